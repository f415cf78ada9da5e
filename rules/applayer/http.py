"""HTTP/1.x: requests and responses as transactions, and the http.* buffers.

The parser reads each direction's reassembled stream as it arrives (any split)
and keeps one transaction per request, oldest first; a response belongs to the
oldest request that has none yet (pipelining).  Lenient as libhtp, which
Suricata uses: blank lines before a request line are skipped, bare LF ends a
line as CRLF does, a header line without a colon is kept whole as a name
(event `http.request_header_invalid` / `response_header_invalid`), folded
header lines continue the previous value, repeated headers are joined with
", ", a request line without protocol is HTTP/0.9 (no headers).  Message
bodies (Content-Length, chunked, a response to the end of the stream) go
through rules.applayer.http_body.

Progress (Tx.progress, per side): LINE once the request/response line is
complete, HEADERS once the header block is, BODY while the body arrives,
base.DONE when the message is complete.  Buffers are inspected from the
progress Suricata registers them at: the request line's parts (http.uri,
http.method, http.protocol, http.request_line) at LINE, headers at HEADERS,
bodies while they grow (rules.applayer.base.BufferDef.body).

Limits (Settings, Suricata's libhtp defaults): a request or response line or
header block longer than `header_limit` ends parsing of that direction (event
`http.request_field_too_long` / `response_field_too_long`); bodies keep at most
`request_body_limit` / `response_body_limit` decoded bytes for inspection (the
rest is still parsed past); at most `max_tx` transactions are kept open (the
oldest unanswered ones go first).
"""
from __future__ import annotations

from dataclasses import dataclass

from rules.applayer.base import DONE, GROWN, BufferDef, Parser, Tx
from rules.applayer.http_body import Body, parse_content_length

PROTO = "http"
IPPROTOS = (6,)
HEADER_NAMES = ("http", "http1")

LINE, HEADERS, BODY = 1, 2, 3

METHODS = (b"GET", b"POST", b"HEAD", b"PUT", b"DELETE", b"OPTIONS", b"TRACE", b"CONNECT", b"PATCH",
           b"PROPFIND", b"PROPPATCH", b"MKCOL", b"COPY", b"MOVE", b"LOCK", b"UNLOCK", b"SEARCH",
           b"CHECKOUT", b"REPORT", b"MERGE", b"SUBSCRIBE", b"UNSUBSCRIBE", b"NOTIFY", b"POLL", b"BCOPY",
           b"BDELETE", b"BMOVE", b"BPROPFIND", b"BPROPPATCH", b"MKACTIVITY", b"ACL", b"VERSION-CONTROL")
_METHOD_PREFIXES = tuple(m + b" " for m in METHODS)
_NO_BODY_STATUS = (204, 304)


@dataclass(frozen=True, slots=True)
class Settings:
    """app-layer.protocols.http.libhtp.default-config (Suricata's defaults)."""
    request_body_limit: int = 100 * 1024
    response_body_limit: int = 100 * 1024
    header_limit: int = 18000          # a line or header block longer than this: the direction is given up
    # a body still arriving is inspected once it holds this much (a complete one always):
    # request- / response-body-minimal-inspect-size (Suricata 7.0.10's checked behaviour: a 912-byte
    # response body with a drop marker in its third segment is dropped on the segment completing it)
    request_body_minimal_inspect_size: int = 32 * 1024
    response_body_minimal_inspect_size: int = 40 * 1024
    max_tx: int = 512                  # open transactions kept per flow
    decompress_limit: int = 1024 * 1024   # compression-bomb-limit


class HttpTx(Tx):
    __slots__ = ("method", "uri_raw", "protocol", "request_line", "req_headers", "req_hdr_raw",
                 "req_body", "status_raw", "status_msg", "response_line", "resp_protocol", "resp_headers",
                 "resp_hdr_raw", "resp_body", "_cache", "head", "min_inspect", "req_index", "resp_index")

    def __init__(self, tx_id: int) -> None:
        Tx.__init__(self, tx_id)
        self.method = b""
        self.uri_raw = b""
        self.protocol = b""
        self.request_line = b""
        self.req_headers: list[tuple[bytes, bytes]] = []
        self.req_index: dict[bytes, bytes] = {}    # lower-case name -> value (of the first header of that name)
        self.req_hdr_raw = b""
        self.req_body = None               # http_body.Body
        self.status_raw = b""
        self.status_msg = b""
        self.response_line = b""
        self.resp_protocol = b""
        self.resp_headers: list[tuple[bytes, bytes]] = []
        self.resp_index: dict[bytes, bytes] = {}
        self.resp_hdr_raw = b""
        self.resp_body = None
        self.head = False
        self._cache: dict = {}
        self.min_inspect = (40 * 1024, 32 * 1024)   # body bytes before a growing body is inspected [resp, req]



# ---------------------------------------------------------------------------- URI normalization
_HEX = frozenset(b"0123456789abcdefABCDEF")


def _pct_decode(s: bytes, keep_slash: bool = False) -> bytes:
    """%XX decoded where XX is hex; anything else (%zz, a cut-off %4, %u0041) stays.
    `keep_slash`: %2F stays encoded (in a path it is not a separator)."""
    if b"%" not in s:
        return s
    out = bytearray()
    i, n = 0, len(s)
    while i < n:
        c = s[i]
        if c == 0x25 and i + 2 < n and s[i + 1] in _HEX and s[i + 2] in _HEX:
            v = int(s[i + 1:i + 3], 16)
            if not (keep_slash and v == 0x2F):
                out.append(v)
                i += 3
                continue
        out.append(c)
        i += 1
    return bytes(out)


def remove_dot_segments(path: bytes) -> bytes:
    """RFC 3986's remove_dot_segments as libhtp runs it: a "/." or "/.." that ends the
    path leaves no trailing "/" ("/a/b/.." is "/a", "/a/./" is "/a", "/a/b/../../.."
    is empty); repeated slashes stay."""
    if path[:1] != b"." and b"/." not in path:
        # nothing to remove: only a "." at the start or after a "/" begins a dot segment
        return path
    return _remove_dot_segments_walk(path)


def _remove_dot_segments_walk(path: bytes) -> bytes:
    """remove_dot_segments' walk over the path, segment by segment."""
    out = bytearray()
    i, n = 0, len(path)
    pending = -1                          # a "/" put back in front of the input
    while i < n:
        if pending >= 0:
            c, pending = pending, -1
        else:
            c = path[i]
            i += 1
        if c == 0x2E:                     # A: "../" or "./" at the start of the input goes
            if i + 1 < n and path[i] == 0x2E and path[i + 1] == 0x2F:
                i += 2
                continue
            if i < n and path[i] == 0x2F:
                i += 1
                continue
        if c == 0x2F:
            if i + 1 < n and path[i] == 0x2E and path[i + 1] == 0x2F:     # B: "/./" -> "/"
                pending = 0x2F
                i += 2
                continue
            if i + 1 == n and path[i] == 0x2E:                            # B: a final "/." -> "/"
                pending = 0x2F
                i += 1
                continue
            if (i + 2 < n and path[i] == 0x2E and path[i + 1] == 0x2E and path[i + 2] == 0x2F) or \
                    (i + 2 == n and path[i] == 0x2E and path[i + 1] == 0x2E):   # C: "/../" or a final "/.."
                pending = 0x2F
                i += 3 if i + 2 < n else 2
                while out and out[-1] != 0x2F:
                    out.pop()
                if out:
                    out.pop()
                continue
        if c == 0x2E and i == n:                                   # D: "." or ".." alone
            continue
        if c == 0x2E and i + 1 == n and path[i] == 0x2E:
            i += 1
            continue
        out.append(c)                                              # E: the next segment
        while i < n and path[i] != 0x2F:
            out.append(path[i])
            i += 1
    return bytes(out)


def split_uri(raw: bytes) -> tuple[bytes | None, bytes | None, bytes, bytes | None]:
    """(scheme, authority, path, rest) of a request target: authority None unless the
    target is absolute (`http://host:port/path`); rest is what follows the path from its
    "?" or "#" on (None when nothing does)."""
    scheme = authority = None
    rest = raw
    # (an origin-form target, "/..." as nearly every request has, names no scheme: a
    # scheme is letters only, so a "/" before "://" rules it out)
    sep = -1 if raw[:1] == b"/" else raw.find(b"://")
    if sep > 0 and raw[:sep].isalpha() and b"/" not in raw[:sep]:
        scheme = raw[:sep]
        rest = raw[sep + 3:]
        end = len(rest)
        for ch in (b"/", b"?", b"#"):
            j = rest.find(ch)
            if 0 <= j < end:
                end = j
        authority, rest = rest[:end], rest[end:]
    cut = len(rest)
    for ch in (b"?", b"#"):
        j = rest.find(ch)
        if 0 <= j < cut:
            cut = j
    return scheme, authority, rest[:cut], (rest[cut:] if cut < len(rest) else None)


def normalize_uri(raw: bytes) -> bytes:
    """http.uri as libhtp normalizes the request target (checked with suricata -r, exact
    lengths): an absolute URI's scheme and host go; the path is percent-decoded except
    %2F, then its dot segments removed (`remove_dot_segments`); backslashes and repeated
    slashes stay; the query follows percent-decoded ("+" stays), the fragment as sent."""
    _scheme, _auth, path, rest = split_uri(raw)
    path = remove_dot_segments(_pct_decode(path, keep_slash=True))
    return path if rest is None else path + _query(rest)


def _query(rest: bytes) -> bytes:
    """The query percent-decoded (%2F too; "+" stays, no dot segments), the fragment as sent."""
    if rest[:1] != b"?":
        return rest
    h = rest.find(b"#")
    if h < 0:
        return _pct_decode(rest)
    return _pct_decode(rest[:h]) + rest[h:]


def _host_of(tx: HttpTx) -> bytes | None:
    """http.host: the host the request names, without the port.  From an absolute URI's
    authority it is lower-cased (and the userinfo goes); from the Host header it keeps
    its case, its userinfo and a trailing dot (Suricata 7.0.10 with libhtp, checked with
    suricata -r: "Host: WWW.Example.com:8080" gives "WWW.Example.com")."""
    _s, auth, _p, _r = split_uri(tx.uri_raw)
    if auth:
        at = auth.rfind(b"@")
        return _strip_port(auth[at + 1:] if at >= 0 else auth).lower()
    host = tx.req_index.get(b"host")
    if host is None:
        return None
    return _strip_port(host.strip())


def _strip_port(host: bytes) -> bytes:
    if host.startswith(b"["):
        end = host.find(b"]")
        return host[:end + 1] if end > 0 else host
    colon = host.rfind(b":")
    return host[:colon] if colon >= 0 else host


def split_headers_py(buf: bytearray, limit: int, to_server: bool):
    """A header block (`buf` from its first header line on), as libhtp reads it: None, not
    complete yet; False, over `limit` bytes (the direction is given up); else (end, headers,
    index, events): `end` bytes make the block with its empty line, `headers` its
    [(name, value)] -- a repeated name's values joined with ", " into its first place, a
    folded line joined to the header before with " ", a line without a colon a name with
    an empty value --, `index` each lower-case name to its first header's value, `events`
    the event names the lines raise, in order.  The reference of rules/applayer/_httphead.c
    (`_SPLIT_HEADERS`, when built)."""
    pos = 0
    lines: list[bytes] = []
    while True:
        nl = buf.find(b"\n", pos)
        if nl < 0:
            return False if len(buf) > limit else None
        ln = bytes(buf[pos:nl])
        if ln.endswith(b"\r"):
            ln = ln[:-1]
        pos = nl + 1
        if not ln:
            break
        lines.append(ln)
        if pos > limit:
            return False
    events: list[str] = []
    headers: list[tuple[bytes, bytes]] = []
    where: dict[bytes, int] = {}          # lower-case name -> its place (repeated names are joined)
    last = 0
    for ln in lines:
        if ln[:1] in (b" ", b"\t") and headers:       # folded: continues the previous value
            n, v = headers[last]
            headers[last] = (n, v + b" " + ln.strip())
            continue
        colon = ln.find(b":")
        if colon < 0:
            # libhtp (checked with suricata -r): a request header line without a colon
            # raises request_field_missing_colon; a response one raises nothing
            if to_server:
                events.append("http.request_field_missing_colon")
            last = len(headers)
            name = ln.strip()
            where.setdefault(name.lower(), last)     # (a later "name: value" joins it; a line like it does not)
            headers.append((name, b""))
            continue
        name = ln[:colon].strip()
        if to_server and (b" " in name or b"\t" in name):
            events.append("http.request_header_invalid")     # a header name with a space
        value = ln[colon + 1:].strip(b" \t")
        low = name.lower()
        i = where.get(low)
        if i is not None:                    # repeated: one header, values joined (libhtp)
            n, v = headers[i]
            headers[i] = (n, v + b", " + value)
            last = i
        else:
            last = where[low] = len(headers)
            headers.append((name, value))
    index: dict[bytes, bytes] = {}
    for n, v in headers:                     # (lines without a colon are not joined: the first wins)
        index.setdefault(n.lower(), v)
    return pos, headers, index, tuple(events)


def join_headers_py(line: bytes, headers: list, kind: int, skip: bytes) -> bytes | None:
    """A buffer made of a header list: kind 0, http.header (each header as
    "Name: value\\r\\n", those whose lower-case name is `skip` left out; None if none is
    left); 1, http.header_names ("\\r\\n", each name and "\\r\\n", "\\r\\n"; None without
    headers); 2, http.start (`line`, "\\r\\n", every header as in http.header, "\\r\\n")."""
    if kind == 0:
        return b"".join([n + b": " + v + b"\r\n" for n, v in headers if n.lower() != skip]) or None
    if kind == 1:
        return b"\r\n" + b"".join([n + b"\r\n" for n, _ in headers]) + b"\r\n" if headers else None
    return line + b"\r\n" + b"".join([n + b": " + v + b"\r\n" for n, v in headers]) + b"\r\n"


try:                                         # the compiled twins (built by the install)
    from rules.applayer._httphead import join as _JOIN_HEADERS
    from rules.applayer._httphead import split as _SPLIT_HEADERS
except ImportError:                          # (a checkout used without `pip install`)
    _SPLIT_HEADERS = split_headers_py
    _JOIN_HEADERS = join_headers_py


# ---------------------------------------------------------------------------- buffers
def _cached(name: str, fn):
    """A buffer computed once per transaction (a None is not kept: the part of the
    message it comes from may not have arrived yet)."""
    def get(tx: HttpTx):
        c = tx._cache
        v = c.get(name)
        if v is None:
            v = fn(tx)
            if v is not None:
                c[name] = v
        return v
    return get


def _hdr(side: bool, name: bytes):
    def get(tx: HttpTx):
        return (tx.req_index if side else tx.resp_index).get(name)
    return get


def _headers_buf(side: bool):
    """http.header: each header as "Name: value\\r\\n", Cookie / Set-Cookie left out (they
    have their own buffer); not the empty line that ends the block."""
    skip = b"cookie" if side else b"set-cookie"

    def get(tx: HttpTx):
        return _JOIN_HEADERS(b"", tx.req_headers if side else tx.resp_headers, 0, skip)
    return get


def _header_names(side: bool):
    def get(tx: HttpTx):
        return _JOIN_HEADERS(b"", tx.req_headers if side else tx.resp_headers, 1, b"")
    return get


def _start(side: bool):
    def get(tx: HttpTx):
        if side:
            return _JOIN_HEADERS(tx.request_line, tx.req_headers, 2, b"")
        return _JOIN_HEADERS(tx.response_line, tx.resp_headers, 2, b"")
    return get


def _body(side: bool):
    """A body buffer: there once the body is complete, or while it grows once it holds the
    side's minimal inspect size (before that: not yet, detection tries again later).  Its
    twin in GROWN gives the same body without copying it."""
    def ready(tx: HttpTx):
        b = tx.req_body if side else tx.resp_body
        if b is None or not b.data:
            return None
        if not b.done and len(b.data) < tx.min_inspect[side]:
            return None
        return b

    def grown(tx: HttpTx):
        b = ready(tx)
        return None if b is None else b.data

    def get(tx: HttpTx):
        b = ready(tx)
        return None if b is None else b.as_bytes()
    GROWN[get] = grown
    return get


def _stat_code(tx: HttpTx):
    return tx.status_raw or None


def _urilen_raw(tx: HttpTx) -> int:
    return len(tx.uri_raw)


REQ, RESP = True, False
# one getter per body: file.data is the body http.request_body / http.response_body are, so
# the prefilter scans it once for the rules of both (rules.detect_tx: a slot per getter)
_REQ_BODY, _RESP_BODY = _body(REQ), _body(RESP)
BUFFERS = [
    BufferDef("http.method", PROTO, REQ, LINE, lambda tx: tx.method or None),
    BufferDef("http.uri", PROTO, REQ, LINE, _cached("uri", lambda tx: normalize_uri(tx.uri_raw) if tx.uri_raw else None)),
    BufferDef("http.uri.raw", PROTO, REQ, LINE, lambda tx: tx.uri_raw or None),
    BufferDef("http.protocol", PROTO, REQ, LINE, lambda tx: tx.protocol or None),
    BufferDef("http.request_line", PROTO, REQ, LINE, lambda tx: tx.request_line or None),
    BufferDef("http.host", PROTO, REQ, HEADERS, _cached("host", lambda tx: _host_of(tx) or None)),
    BufferDef("http.host.raw", PROTO, REQ, HEADERS, _cached("host_raw", lambda tx: split_uri(tx.uri_raw)[1]
                                                            or tx.req_index.get(b"host"))),
    BufferDef("http.user_agent", PROTO, REQ, HEADERS, _hdr(REQ, b"user-agent")),
    BufferDef("http.cookie", PROTO, REQ, HEADERS, _hdr(REQ, b"cookie")),
    BufferDef("http.referer", PROTO, REQ, HEADERS, _hdr(REQ, b"referer")),
    BufferDef("http.accept", PROTO, REQ, HEADERS, _hdr(REQ, b"accept")),
    BufferDef("http.accept_enc", PROTO, REQ, HEADERS, _hdr(REQ, b"accept-encoding")),
    BufferDef("http.accept_lang", PROTO, REQ, HEADERS, _hdr(REQ, b"accept-language")),
    BufferDef("http.connection", PROTO, REQ, HEADERS, _hdr(REQ, b"connection")),
    BufferDef("http.content_type", PROTO, REQ, HEADERS, _hdr(REQ, b"content-type")),
    BufferDef("http.content_len", PROTO, REQ, HEADERS, _hdr(REQ, b"content-length")),
    BufferDef("http.header", PROTO, REQ, HEADERS, _cached("hdr_ts", _headers_buf(REQ))),
    BufferDef("http.header_names", PROTO, REQ, HEADERS, _cached("names_ts", _header_names(REQ))),
    BufferDef("http.header.raw", PROTO, REQ, HEADERS, lambda tx: tx.req_hdr_raw or None),
    BufferDef("http.start", PROTO, REQ, HEADERS, _cached("start_ts", _start(REQ))),
    BufferDef("http.request_body", PROTO, REQ, BODY, _REQ_BODY, body=True),
    BufferDef("http.stat_code", PROTO, RESP, LINE, _stat_code),
    BufferDef("http.stat_msg", PROTO, RESP, LINE, lambda tx: tx.status_msg or None),
    BufferDef("http.response_line", PROTO, RESP, LINE, lambda tx: tx.response_line or None),
    BufferDef("http.server", PROTO, RESP, HEADERS, _hdr(RESP, b"server")),
    BufferDef("http.location", PROTO, RESP, HEADERS, _hdr(RESP, b"location")),
    BufferDef("http.response_body", PROTO, RESP, BODY, _RESP_BODY, body=True),
    BufferDef("file.data", PROTO, RESP, BODY, _RESP_BODY, body=True),
]
# buffers that exist in both directions: the rule's direction picks the side (Suricata
# registers them for both; `flow:to_client` or a response buffer before them selects it)
BOTH_SIDES = {
    "http.header": (_cached("hdr_tc", _headers_buf(RESP)), HEADERS),
    "http.header_names": (_cached("names_tc", _header_names(RESP)), HEADERS),
    "http.header.raw": (lambda tx: tx.resp_hdr_raw or None, HEADERS),
    "http.start": (_cached("start_tc", _start(RESP)), HEADERS),
    "http.content_type": (_hdr(RESP, b"content-type"), HEADERS),
    "http.content_len": (_hdr(RESP, b"content-length"), HEADERS),
    "http.connection": (_hdr(RESP, b"connection"), HEADERS),
    "http.protocol": (lambda tx: tx.resp_protocol or None, LINE),
    "http.cookie": (_hdr(RESP, b"set-cookie"), HEADERS),
    "file.data": (_REQ_BODY, BODY),
}
ALIASES = {"file_data": "file.data"}
# the legacy content modifiers: `content:"x"; http_uri;` puts that content in the buffer
MODIFIERS = {
    "http_uri": "http.uri", "http_raw_uri": "http.uri.raw", "http_method": "http.method",
    "http_header": "http.header", "http_raw_header": "http.header.raw", "http_cookie": "http.cookie",
    "http_user_agent": "http.user_agent", "http_host": "http.host", "http_raw_host": "http.host.raw",
    "http_client_body": "http.request_body", "http_server_body": "http.response_body",
    "http_stat_code": "http.stat_code", "http_stat_msg": "http.stat_msg",
    "http_content_type": "http.content_type", "http_header_names": "http.header_names",
    "http_start": "http.start", "http_protocol": "http.protocol", "http_request_line": "http.request_line",
    "http_response_line": "http.response_line", "http_accept": "http.accept", "http_accept_enc": "http.accept_enc",
    "http_accept_lang": "http.accept_lang", "http_referer": "http.referer", "http_connection": "http.connection",
    "http_content_len": "http.content_len", "http_location": "http.location", "http_server": "http.server",
}


def content_problem(buffer: str, patterns: list[bytes]) -> str | None:
    """Suricata refuses an http.host content with upper-case letters (without nocase)."""
    if buffer == "http.host":
        for p in patterns:
            if p != p.lower():
                return ("http.host: the content has upper-case letters; write it in lower case "
                        "(or add nocase)")
    return None


# ---------------------------------------------------------------------------- detection
def probe(data: bytes, to_server: bool, sport: int, dport: int, ipproto: int = 6,
          settings: Settings | None = None) -> bool | None:
    """A request line's method (followed by a space) from the client, or "HTTP/" from the
    server.  Blank lines before it are skipped."""
    d = data.lstrip(b"\r\n")
    if not d:
        return None
    if to_server:
        for p in _METHOD_PREFIXES:
            if d[:len(p)] == p[:len(d)]:
                return True if len(d) >= len(p) else None
        return False
    if d[:5] == b"HTTP/"[:len(d)]:
        return True if len(d) >= 5 else None
    return False


# ---------------------------------------------------------------------------- the parser
def _seen_growth(body, kept: int, tx, to_server: bool) -> bool:
    """Did the body's growth from `kept` bytes change what detection sees (Parser.gen)?  It
    sees the body once it holds the minimal inspect size, and then as it grows (not past
    its limit: the bytes kept stay the same)."""
    n = len(body.data)
    return n != kept and n >= tx.min_inspect[to_server]


class _Side:
    """One direction's parse state."""
    __slots__ = ("buf", "state", "hdr_start", "body", "gone", "tx")

    def __init__(self) -> None:
        self.buf = bytearray()        # bytes not yet consumed (a partial line or header block)
        self.state = 0                # 0 line, 1 headers, 2 body
        self.hdr_start = 0
        self.body = None
        self.gone = False             # given up: the rest of this direction is skipped
        self.tx: HttpTx | None = None


class Parser(Parser):  # noqa: F811 - the protocol's parser, named as registry.py expects
    __slots__ = ("s", "sides", "next_id", "resp_next", "_moved")    # (the body lane reads `sides` by offset)
    proto = PROTO

    def __init__(self, settings: Settings | None = None, ipproto: int = 6) -> None:
        super().__init__()
        self.s = settings or Settings()
        self.sides = (_Side(), _Side())      # [to_client, to_server]
        self.next_id = 0
        self.resp_next = 0                   # index in txs of the tx the next response belongs to
        self.gen = 0                         # (Parser.gen) moved by every feed but a body's unseen growth
        self._moved = False

    # -- public
    def feed(self, data: bytes, to_server: bool) -> None:
        side = self.sides[to_server]
        if side.gone or not data:
            return
        self._moved = False
        try:
            side.buf += data
            self._run(side, to_server)
        except Exception:        # never raises: a parser bug gives up this direction
            side.gone = True
            side.buf = bytearray()
            self.event("http.parser_error")      # (an event moves the gen)
        if self._moved:
            self.gen += 1

    def take(self, data: bytes, to_server: bool) -> bool:
        """`feed` for a piece that only continues a body in progress (Body.take_content),
        as `feed` would take it -- True; else False, nothing changed: `feed` takes it."""
        side = self.sides[to_server]
        if side.state != 2 or side.buf or side.gone or not data:
            return False
        body = side.body
        kept = len(body.data)
        if not body.take_content(data):
            return False
        tx = side.tx
        tx.body_grew[to_server] = True
        if _seen_growth(body, kept, tx, to_server):
            self.gen += 1
        return True

    def event(self, name: str) -> None:
        self._moved = True          # (app-layer-event rules read a transaction's events)
        super().event(name)

    def _fail(self) -> None:
        self._moved = True
        self.failed = True
        for side in self.sides:
            side.gone = True
            side.buf = bytearray()

    def end(self, to_server: bool) -> None:
        self.gen += 1
        side = self.sides[to_server]
        try:
            if side.state == 2 and side.body is not None and side.tx is not None:
                side.body.finish()
                self._body_done(side, to_server)
        except Exception:
            side.gone = True

    # -- internals
    def _run(self, side: _Side, to_server: bool) -> None:
        while side.buf and not side.gone:
            if side.state == 2:
                if not self._feed_body(side, to_server):
                    return
                continue
            self._moved = True          # a line or a header block (or not yet: no matter)
            if side.state == 0:
                if not self._line(side, to_server):
                    return
            else:
                if not self._headers(side, to_server):
                    return

    def _take_line(self, side: _Side, start: int = 0) -> bytes | None:
        buf = side.buf
        nl = buf.find(b"\n", start)
        if nl < 0:
            if len(buf) - start > self.s.header_limit:
                self._too_long(side)
            return None
        return bytes(buf[start:nl])

    def _too_long(self, side: _Side) -> None:
        self.event("http.request_field_too_long" if side is self.sides[1] else "http.response_field_too_long")
        side.gone = True
        side.buf = bytearray()

    def _line(self, side: _Side, to_server: bool) -> bool:
        buf = side.buf
        # blank lines before a request/response line are skipped
        i = 0
        while i < len(buf) and buf[i] in (0x0D, 0x0A):
            i += 1
        if i:
            del buf[:i]
            if not buf:
                return False
        raw = self._take_line(side)
        if raw is None:
            return False
        del buf[:len(raw) + 1]
        line = raw[:-1] if raw.endswith(b"\r") else raw
        if to_server:
            self._request_line(side, line)
        else:
            self._response_line(side, line)
        return True

    def _new_tx(self) -> HttpTx:
        tx = HttpTx(self.next_id)
        self.next_id += 1
        tx.min_inspect = (self.s.response_body_minimal_inspect_size, self.s.request_body_minimal_inspect_size)
        return tx

    def _request_line(self, side: _Side, line: bytes) -> None:
        parts = line.split()
        tx = self._new_tx()
        tx.request_line = line
        if parts:
            tx.method = parts[0]
        if len(parts) >= 2:
            # the target is what lies between the method and the protocol (spaces inside kept)
            if len(parts) >= 3 and parts[-1].upper().startswith(b"HTTP/"):
                start = line.find(parts[1], len(parts[0]))
                end = line.rfind(parts[-1])
                tx.uri_raw = line[start:end].rstrip(b" \t")
                tx.protocol = parts[-1]
            else:
                start = line.find(parts[1], len(parts[0]))
                tx.uri_raw = line[start:].rstrip(b" \t")
        if len(parts) < 2:
            self.event("http.request_line_invalid")
        tx.head = tx.method.upper() == b"HEAD"
        tx.progress[1] = LINE
        self.txs.append(tx)
        if len(self.txs) > self.s.max_tx:
            self._drop_oldest()
        side.tx = tx
        if tx.protocol:
            side.state = 1
            side.hdr_start = 0
        else:                                 # HTTP/0.9: a line, no headers, no body
            tx.progress[1] = DONE
            side.tx = None

    def _response_line(self, side: _Side, line: bytes) -> None:
        if not line.upper().startswith(b"HTTP"):
            self.event("http.response_line_invalid")
        tx = self._response_tx()
        tx.response_line = line
        parts = line.split(None, 2)
        if parts:
            tx.resp_protocol = parts[0]
        if len(parts) >= 2:
            tx.status_raw = parts[1]
        if len(parts) >= 3:
            tx.status_msg = parts[2]
        tx.progress[0] = LINE
        side.tx = tx
        side.state = 1

    def _response_tx(self) -> HttpTx:
        """The transaction a new response belongs to: the oldest request without one, or a
        new transaction when none waits (a response without request: event)."""
        for tx in self.txs:
            if tx.progress[0] == 0:
                return tx
        self.event("http.unable_to_match_response_to_request")
        tx = self._new_tx()
        tx.progress[1] = DONE
        self.txs.append(tx)
        if len(self.txs) > self.s.max_tx:
            self._drop_oldest()
        return tx

    def _drop_oldest(self) -> None:
        self.event("http.too_many_transactions")
        del self.txs[0]

    def _headers(self, side: _Side, to_server: bool) -> bool:
        buf = side.buf
        got = _SPLIT_HEADERS(buf, self.s.header_limit, to_server)
        if not got:
            if got is False:
                self._too_long(side)
            return False
        pos, headers, index, events = got
        for name in events:
            self.event(name)
        tx = side.tx
        raw = bytes(buf[:pos])
        del buf[:pos]
        if to_server:
            tx.req_headers, tx.req_hdr_raw, tx.req_index = headers, raw, index
        else:
            tx.resp_headers, tx.resp_hdr_raw, tx.resp_index = headers, raw, index
        tx.progress[to_server] = HEADERS
        body = self._body_for(tx, index, to_server)
        if body is None:
            tx.progress[to_server] = DONE
            side.state = 0
            side.tx = None
            if not to_server and tx.status_raw[:1] == b"1" and tx.status_raw != b"101":
                # an interim response (100 Continue): the real one follows for the same request
                tx.progress[0] = 0
        else:
            if to_server:
                tx.req_body = body
            else:
                tx.resp_body = body
            side.body = body
            side.state = 2
            tx.progress[to_server] = BODY
        return True

    def _body_for(self, tx: HttpTx, index: dict, to_server: bool):
        """The message's body reader, None when it has none.  As libhtp (Suricata 7.0.10): a
        request whose Transfer-Encoding is not the token chunked, or whose Content-Length has
        no digit, stops parsing of the flow (`failed`: app-layer.error-policy applies); a
        response is chunked when "chunked" appears anywhere in the value (anything but
        exactly chunked raises http.response_abnormal_transfer_encoding)."""
        te = index.get(b"transfer-encoding")
        cl = index.get(b"content-length")
        chunked = False
        if te is not None:
            low = te.lower()
            if to_server:
                if b"chunked" not in [t.strip() for t in low.split(b",")]:
                    self.event("http.invalid_transfer_encoding_value_in_request")
                    self._fail()
                    return None
                chunked = True
            else:
                chunked = b"chunked" in low
                if low.strip() != b"chunked":
                    self.event("http.response_abnormal_transfer_encoding")
        length = None
        if cl is not None and not chunked:
            length = parse_content_length(cl)
            if length is None:
                if to_server:
                    self.event("http.invalid_content_length_field_in_request")
                    self._fail()
                    return None
                self.event("http.invalid_content_length_field_in_response")

        # Content-Encoding goes to the body as sent: libhtp reads the whole value (requests)
        # or its own tokens (responses); Suricata decompresses request bodies too
        enc = index.get(b"content-encoding") or b""
        if to_server:
            if not chunked and not length:
                return None
            return Body(chunked, length, enc, self.s.request_body_limit, True, to_server=True)
        status = tx.status_raw
        if tx.head or status[:1] == b"1" or (status.isdigit() and int(status) in _NO_BODY_STATUS):
            return None
        if not chunked and length == 0:
            return None
        return Body(chunked, length, enc, self.s.response_body_limit, True, to_server=False)

    def _feed_body(self, side: _Side, to_server: bool) -> bool:
        body = side.body
        tx = side.tx
        kept = len(body.data)
        n = body.feed(bytes(side.buf))
        del side.buf[:n]
        tx.body_grew[to_server] = True
        for ev in body.events:
            self.event(ev)
        body.events.clear()
        if body.failed:                      # libhtp gave up: Suricata stops parsing the flow
            self._fail()
            return False
        if body.done:
            self._body_done(side, to_server)
            return True
        if _seen_growth(body, kept, tx, to_server):
            self._moved = True
        return False

    def _body_done(self, side: _Side, to_server: bool) -> None:
        self._moved = True
        tx = side.tx
        tx.progress[to_server] = DONE
        side.state = 0
        side.body = None
        side.tx = None
