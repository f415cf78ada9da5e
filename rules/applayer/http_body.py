"""HTTP/1.x message bodies as Suricata 7.0.10 (libhtp 0.5.50) decodes them for
inspection: dechunked, decompressed, capped at the body limit.

    body = Body(chunked, length, encodings, limit, decompress, to_server=True)
    n = body.feed(data)    # bytes of `data` that were this body's; the rest is the next message
    body.finish()          # the direction ended
    body.done, body.failed, body.truncated, body.data, body.raw_len, body.events, body.trailers

Sans-I/O, never raises, bounded: `data` holds at most `limit` bytes (Suricata's
request-body-limit / response-body-limit, 100 KiB by default; 0 is no limit,
as in Suricata), a partial chunk-size or trailer line is kept up to
FIELD_LIMIT bytes, each decompression layer holds one GZIP_BUF output block,
and decoding stops once the body is full and `decode_budget` decoded bytes
were produced.  Past the limit the body is still parsed to its end, so the
next pipelined message is found.

How it was checked.  Against Suricata 7.0.10 itself (`suricata -r` on crafted
flows, stock suricata.yaml with randomize-inspection-sizes off and stream
depth 0, rules on http.request_body / file.data / http.response_body /
http.uri / http.header / app-layer-event, EVE anomaly records): those answers
are recorded in tests/unit/test_applayer_http_body.py (SURICATA).  Then against
the libhtp 0.5.50 that Suricata links, called through ctypes with Suricata's
settings (IDS personality, request decompression on, layer limit 2, lzma
layers 0, bomb limit 1 MiB, field limits 9000/18000): 20,000 random bodies
(chunked, Content-Length and close-delimited, every coding above, corrupted,
truncated, fed in random pieces down to single bytes) give the same body bytes,
the same events and the same end of body, but for the edge cases named below.
Where 0.5.50 differs from the 0.5.x source, its compiled code was read.

Pieces.  `feed` takes the stream as it arrives, one call per piece; libhtp's
restarts and line limits depend on where the pieces end, as in Suricata.
feed(b"") marks the end of a piece, e.g. when the headers ended exactly at the
end of one (a response's first chunk-size line then counts as buffered).

Chunked bodies.  A chunk-size line ends at LF (a CR alone ends nothing).
Leading CR, LF, SP, HT, VT, FF are skipped, then the hex digits (either case,
leading zeros fine) are the size and anything after them is ignored ("5zz",
"5 ; x"; "0x5" is size 0: the last chunk); a ';' after the digits raises
http.request_chunk_extension, on requests and responses alike.  No digits, or
a size over 0x7fffffff, is an invalid length.  After a chunk's data everything
up to the next LF is skipped ("HELLOXYZ\r\n" after a 5-byte chunk gives HELLO).
Requests and responses differ on bad lines:
- request: an empty line or an invalid length raises
  http.invalid_request_chunk_len and libhtp gives up (HTP_ERROR); Suricata then
  stops parsing the whole flow, both directions (no pipelined request, no
  response after it).  `failed` says so.
- response: lines of only blanks are skipped; an invalid length raises
  http.invalid_response_chunk_len and the rest of the stream is the body, from
  the bad line on.  A line that libhtp holds in its buffer -- one that began in
  an earlier piece, or after a piece ended in this state -- is read to its LF
  and only its bytes in the current piece reach the body; any other line ends
  at its first byte that is neither blank nor a hex digit, so an HTML page sent
  as "chunked" is inspected as it is.
- a line held in libhtp's buffer longer than FIELD_LIMIT (18000) bytes fails
  the body: a request raises http.request_field_too_long, a response nothing
  (its "Response the buffer limit" message maps to no event in Suricata).
The last chunk is followed by trailer lines up to an empty line, parsed as
libhtp parses header fields (a leading SP, HT or NUL folds; a line without a
colon raises http.request_field_missing_colon / ..._response_...; invalid
folding raises http.invalid_{request,response}_field_folding).  Suricata adds
them to the headers, so http.header matches them: `trailers` has them parsed,
`trailer_lines` as sent, for the header parser's own checks.
Transfer-Encoding chunked wins over Content-Length (`length` is then ignored).

Content-Length bodies end after `length` bytes.  A body cut short by the end
of the stream (finish) is complete as it is: `truncated`, no event (Suricata
raises none).  A response with neither runs to the end of the stream.  When a
response ends in the middle of a chunk-size or trailer line, libhtp hands that
line to the body ("Unexpected response body").  parse_content_length() gives
libhtp's reading of a Content-Length value.

Decompression.  libhtp decompresses response bodies (file.data and
http.response_body match the decompressed bytes) and, in Suricata 7, request
bodies too: Suricata turns on libhtp's request decompression, so
http.request_body matches a gzip or deflate request body decompressed.
`decompress` (default on) is that switch for both.  Content-Encoding values:
- the whole value, case-insensitive, NULs ignored: gzip, x-gzip -> gzip;
  deflate, x-deflate -> deflate; lzma -> lzma; inflate -> nothing.  A request is
  decompressed only then: "gzip, gzip", "br, gzip" etc. leave a request body as
  it is, with no event.
- otherwise (responses) the value is cut into tokens at ',' and ' ' by
  libhtp's tokenizer, which after a token steps over one byte counted from
  before the separators it skipped ("gzip, gzip, gzip" reads gzip, gzip, "p",
  gzip).  Each token counts against `layer_limit`
  (response-body-decompress-layer-limit, 2; 0 is no limit, not "disabled" as
  suricata.yaml's comment says): past it http.too_many_encoding_layers and the
  rest is ignored.  A token containing gzip / deflate (any case) is that coding,
  with http.abnormal_ce_header unless it is exactly gzip, x-gzip, deflate,
  x-deflate; "none" and "inflate" are nothing; "lzma" raises
  http.compression_bomb (lzma layers are off by default) and ends the list;
  anything else ("br", "identity") raises http.abnormal_ce_header.  The layers
  are undone in header order (the reverse of RFC 9110); the fallback below
  makes either order work for gzip and deflate.
- lzma is never decoded (lzma-enabled is off by default): passed through.
Each layer is libhtp's decompressor: gzip inflates with zlib's gzip/zlib header
detection, deflate as raw deflate.  When inflate fails, up to three restarts on
the current piece -- the same format, then the other one, then the first
again, skipping a gzip header -- each raising http.gzip_decompression_failed;
when all fail, that piece and everything after it is passed through undecoded
(a "gzip" body that is plain text is inspected as plain text).  So a zlib
stream labelled deflate decodes when it arrives in one piece and passes raw
when it trickles in a few bytes at a time, in Suricata too.  An error after
some output, before any restart, keeps the output and stops that layer (0.5.50:
the rest of the body is dropped, and a layer before it stops too); after a
restart the same error is just a failed attempt.  Data after the end of a gzip
member (garbage, a second member) is ignored.  Output is handed on in 8 KiB
blocks (GZIP_BUF) as libhtp does, which shows at the edges: a request body cut
short keeps only what was handed on (libhtp completes a request cut short only
in its trailer), and of two layers cut short the inner one's last block is
lost.  What inflate wrote before an error is recovered as far as Python's zlib
allows: up to the last input byte before the error.
Compression bombs: when the decoded size passes `bomb_limit`
(compression-bomb-limit, 1 MiB) and is over 2048 times the body's wire size so
far, http.compression_bomb and decoding stops (the body is still parsed).
libhtp counts a request's wire size before the current piece and a response's
including it, so a single request piece that inflates past 1 MiB is a bomb and
the same response is not.  decompression-time-limit is a wall-clock limit: not
reproduced (this module reads no clock); decoding stops quietly instead once
the body limit is reached and `decode_budget` bytes were decoded.

Edge cases where libhtp 0.5.50 differs and this module does not follow: at the
end of a response stream libhtp may append leftover bytes of an earlier bad
chunk-size line to the body once more; response trailer lines ending in a lone
CR; data decoded past the bomb limit; before a decompression error, what zlib
decoded from the failing input byte itself (at most one match, 258 bytes).

Events are Suricata's names ("http.<event>" as app-layer-event writes them),
each raised once per body.  The Content-Encoding ones (abnormal_ce_header,
too_many_encoding_layers, compression_bomb for lzma) are raised when the Body
is made.
"""
from __future__ import annotations

import re
import zlib
from collections.abc import Sequence

BODY_LIMIT = 100 * 1024          # request-body-limit / response-body-limit default (100kb)
FIELD_LIMIT = 18000              # libhtp's hard field limit: a line buffered over feeds
GZIP_BUF = 8192                  # libhtp's decompressor output block
BOMB_LIMIT = 1 << 20             # compression-bomb-limit default (1mb)
BOMB_RATIO = 2048                # libhtp's HTP_COMPRESSION_BOMB_RATIO
LAYER_LIMIT = 2                  # response-body-decompress-layer-limit default
MAX_LAYERS = 16                  # our own cap on decompression layers (layer_limit 0 is unlimited in Suricata)
TRAILER_MAX = 1024               # trailer fields kept (Suricata's headers-limit default); the rest is parsed, not kept
MAX_CHUNK = 0x7FFFFFFF           # libhtp refuses chunk sizes over INT32_MAX

_CTL = frozenset(b"\r\n \t\x0b\x0c")               # skipped before a chunk size
_HEX = frozenset(b"0123456789abcdefABCDEF")
_FOLD = (b" ", b"\t", b"\0")                       # a line starting so continues the previous field
_GZIP, _DEFLATE, _LZMA = "gzip", "deflate", "lzma"
_WBITS = {_GZIP: 15 + 32, _DEFLATE: -15}            # zlib: automatic gzip/zlib header; raw deflate
_ZERR = re.compile(rb"Error (-?\d+)")
_DIGITS = re.compile(rb"[0-9]+")
_PLAIN_SIZE = re.compile(rb"([0-9a-fA-F]{1,7})\r?\n")   # a chunk-size line with nothing else on it
_Z_DATA_ERROR = -3

# states of the body parser
_LENGTH, _CLOSE, _SIZE, _DATA, _DATA_END, _TRAILER, _DONE = range(7)


def parse_content_length(value: bytes) -> int | None:
    """libhtp's reading of a Content-Length value: anything before the first digit
    is skipped ("x11", "-11", "+11" are 11), the digits are the length and
    anything after them is ignored ("11abc", "1 1" is 1, "11, 11" is 11); no
    digit, or a number past int64, is invalid (None).  An invalid request length
    raises http.invalid_content_length_field_in_request and Suricata stops
    parsing the flow; an invalid response length
    (..._in_response) stops the response side."""
    m = _DIGITS.search(value)
    if m is None:
        return None
    n = int(m.group())
    return n if n <= 0x7FFFFFFFFFFFFFFF else None


def parse_chunk_size(line: bytes) -> tuple[int | None, bool]:
    """(size, extension) of one chunk-size line as libhtp reads it: None for an
    invalid size, -1 for a line of nothing but CR/LF/whitespace."""
    n, i = len(line), 0
    while i < n and line[i] in _CTL:
        i += 1
    if i == n:
        return -1, False
    j = i
    while j < n and line[j] in _HEX:
        j += 1
    ext = j < n and line.find(b";", j) >= 0
    digits = line[i:j].lstrip(b"0")
    if j == i or len(digits) > 8:
        return None, ext
    size = int(digits, 16) if digits else 0
    return (size if size <= MAX_CHUNK else None), ext


def content_codings(value: bytes, to_server: bool, layer_limit: int = LAYER_LIMIT) -> tuple[list[str], list[str]]:
    """The decompression layers libhtp sets up for a Content-Encoding value, in the
    order it runs them, and the events the value raises (module docstring)."""
    whole = bytes(value).replace(b"\0", b"").lower()
    fast = {b"gzip": _GZIP, b"x-gzip": _GZIP, b"deflate": _DEFLATE, b"x-deflate": _DEFLATE, b"lzma": _LZMA}
    if whole in fast:
        return [fast[whole]], []
    if to_server or whole == b"inflate":
        return [], []
    layers: list[str] = []
    events: list[str] = []
    rest, layers_seen, tokens = bytes(value), 0, 0
    while rest:
        i = 0
        while i < len(rest) and rest[i] in b", ":
            i += 1
        if i >= len(rest):
            break
        j = i
        while j < len(rest) and rest[j] not in b", ":
            j += 1
        tok = rest[i:j]
        if layer_limit:
            layers_seen += 1
            if layers_seen > layer_limit:
                events.append("http.too_many_encoding_layers")
                break
        tokens += 1
        low = tok.lower()
        if b"gzip" in low:
            if tok not in (b"gzip", b"x-gzip"):
                events.append("http.abnormal_ce_header")
            layers.append(_GZIP)
        elif b"deflate" in low:
            if tok not in (b"deflate", b"x-deflate"):
                events.append("http.abnormal_ce_header")
            layers.append(_DEFLATE)
        elif tok == b"lzma":
            # lzma layers are off by default: any lzma token is over the limit (of 0)
            events.append("http.compression_bomb")
            break
        elif tok not in (b"inflate", b"none"):
            events.append("http.abnormal_ce_header")
        # libhtp steps over the token and one byte from where the token search began
        if len(tok) + 1 >= len(rest):
            break
        rest = rest[len(tok) + 1:]
    return layers[:MAX_LAYERS], events


def _gzip_header_len(data: bytes) -> int:
    """How much of `data` libhtp skips as a gzip header before a restart (its probe)."""
    if len(data) < 4 or data[0] != 0x1F or data[1] != 0x8B or data[3] == 0:
        return 0
    flags = data[3]
    if flags & 0x18:                       # FNAME or FCOMMENT: up to the first NUL after the fixed header
        end = data.find(b"\0", 10)
        n = (end if end >= 0 else len(data)) + 1
    elif flags & 0x02:                     # FHCRC
        n = 12
    else:
        n = 10
    return 0 if n > len(data) else n


class _Layer:
    """One decompression layer as libhtp 0.5.50 runs it (htp_decompressors.c, and its
    compiled form where 0.5.50 differs from the 0.5.x source): inflate into a
    GZIP_BUF block that is handed on when full, at the end of the zlib stream or
    at the end of the body; restarts on failure; passthrough when they fail."""

    __slots__ = ("body", "fmt", "next", "z", "pending", "restarts", "passthrough", "alive", "errored", "eof",
                 "broken")

    def __init__(self, body: Body, fmt: str, nxt: _Layer | None) -> None:
        self.body, self.fmt, self.next = body, fmt, nxt
        self.pending = bytearray()          # the output block not yet handed on
        self.restarts = 0
        self.passthrough = fmt == _LZMA     # lzma decompression is off in Suricata's defaults
        self.alive = True                   # libhtp's zlib_initialized != 0
        self.errored = False                # libhtp 0.5.50's state 5: stopped after keeping what it decoded
        self.eof = False
        self.broken = False                 # zlib returned an error: every further inflate fails
        self.z = None if self.passthrough else zlib.decompressobj(_WBITS[fmt])

    def _emit(self, out: bytes) -> bool:
        """Hand a block on: to the next layer while this one is alive, else to the body."""
        if self.next is not None and self.alive:
            return self.next.decompress(out)
        return self.body._deliver(out)

    def _flush(self) -> bool:
        """Hand the pending block on; it stays pending when that fails (libhtp resets
        its buffer only after a successful callback)."""
        if self._emit(bytes(self.pending)):
            self.pending.clear()
            return True
        self.alive = False
        return False

    def end(self) -> bool:
        """The body ended: hand on what is pending -- to the next layer as data, so the
        next layer's own pending block is not handed on."""
        if self.passthrough:
            return True
        if self.errored:
            return False
        out = bytes(self.pending)
        self.pending.clear()
        if self.next is not None and self.alive:
            return self.next.end() if not out else self.next.decompress(out)
        return self.body._deliver(out)

    def decompress(self, data: bytes) -> bool:
        if self.passthrough:
            return self.body._deliver(data)
        if self.errored or not self.alive:
            return False
        consumed = 0
        while True:
            inp = data[consumed:]
            restart = None
            while inp:
                if self.eof:
                    return self._emit(b"")
                if len(self.pending) >= GZIP_BUF and not self._flush():
                    return False
                out, err, inp = self._inflate(inp, GZIP_BUF - len(self.pending))
                self.pending += out
                if err == "end":
                    return self._flush()
                if err == _Z_DATA_ERROR and self.pending and not self.restarts:
                    # an error after output, before any restart: keep the output, then stop for good
                    if not self._flush():
                        return False
                    self.body._event("http.gzip_decompression_failed")
                    self.errored = True
                    return False
                if err is not None:
                    self.body._event("http.gzip_decompression_failed")
                    restart = self._restart(data)
                    if restart is None:
                        # every restart failed: this feed and all after it pass through undecoded
                        self.alive = False
                        self.passthrough = True
                        self.pending.clear()
                        self.z = None
                        return self.body._deliver(data)
                    break
            if restart is None:
                return True
            consumed = restart

    def _inflate(self, inp: bytes, room: int) -> tuple[bytes, object, bytes]:
        """zlib's inflate() with `room` bytes of output space: (output, None | "end" |
        zlib error code, input left)."""
        if self.broken:
            return b"", _Z_DATA_ERROR, b""
        z = self.z
        before = z.copy()
        try:
            out = z.decompress(inp, room)
        except zlib.error as e:
            self.broken = True
            m = _ZERR.search(str(e).encode())
            code = int(m.group(1)) if m else _Z_DATA_ERROR
            return self._output_before_error(before, inp, room), code, b""
        if z.eof:
            self.eof = True
            return out, "end", b""
        return out, None, z.unconsumed_tail

    @staticmethod
    def _output_before_error(z, inp: bytes, room: int) -> bytes:
        """What inflate wrote before it hit the error: Python's zlib drops it, so find
        the longest prefix of `inp` that decodes without error (errors are
        monotone in the prefix length)."""
        lo, hi, best = 0, len(inp), b""
        while hi - lo > 1:
            mid = (lo + hi) // 2
            try:
                out = z.copy().decompress(inp[:mid], room)
            except zlib.error:
                hi = mid
            else:
                lo, best = mid, out
        return best

    def _restart(self, data: bytes) -> int | None:
        """libhtp's htp_gzip_decompressor_restart: where to inflate `data` from again,
        or None when the three restarts are used up."""
        if self.restarts >= 3:
            return None
        if self.restarts:
            self.fmt = _GZIP if self.fmt == _DEFLATE else _DEFLATE
        self.restarts += 1
        self.z = zlib.decompressobj(_WBITS[self.fmt])
        self.broken = self.eof = False
        return _gzip_header_len(data)


class Body:
    """One message body being received (module docstring).

    `chunked`: Transfer-Encoding chunked; `length`: Content-Length (ignored when
    chunked); neither: the body runs to the end of the direction.  `encodings`:
    the Content-Encoding header value as bytes (repeated headers joined with
    ", ", as libhtp joins them) or a list of values, which is joined so.
    `limit`: bytes of decoded body kept (0: no limit).  `to_server`: a request
    body (libhtp treats bad chunk lines and codings differently per side).
    """

    __slots__ = ("to_server", "limit", "line_limit", "bomb_limit", "decode_budget", "data", "raw_len", "events",
                 "trailers", "done", "failed", "truncated", "_state", "_left", "_line", "_carry", "_skipped",
                 "_layers", "_entity", "_msg", "_decoding", "_trailer_line", "trailer_lines", "_bytes")

    def __init__(self, chunked: bool, length: int | None, encodings: bytes | Sequence[bytes] = (),
                 limit: int = BODY_LIMIT, decompress: bool = True, *, to_server: bool,
                 layer_limit: int = LAYER_LIMIT, bomb_limit: int = BOMB_LIMIT, decode_budget: int | None = None,
                 line_limit: int = FIELD_LIMIT) -> None:
        self.to_server = to_server
        self.limit = max(0, limit)
        self.line_limit = line_limit
        self.bomb_limit = bomb_limit
        self.decode_budget = bomb_limit + 64 * 1024 if decode_budget is None else decode_budget
        self.data = bytearray()
        self._bytes = b""                     # bytes(data) as last handed out (see as_bytes)
        self.raw_len = 0
        self._left = 0                        # bytes to go in the body (length) or the chunk
        self.events: list[str] = []
        self.trailers: list[tuple[bytes, bytes]] = []
        self.trailer_lines: list[bytes] = []  # the trailer fields as sent (folded lines joined), for a header parser
        self.done = self.failed = self.truncated = False
        self._line = bytearray()              # a chunk-size or trailer line not yet complete
        self._carry = False                   # the chunk-size line counts as buffered (libhtp's field limit)
        self._skipped = 0                     # blank lines skipped while buffered (they stay in libhtp's buffer)
        self._trailer_line: bytes | None = None   # a trailer field waiting for folded continuations
        self._entity = 0                      # decoded bytes produced (libhtp's entity_len)
        self._msg = 0                         # body bytes on the wire so far (libhtp's message_len)
        self._layers: list[_Layer] = []
        self._decoding = False
        if decompress:
            value = encodings if isinstance(encodings, (bytes, bytearray)) else b", ".join(encodings)
            if value:
                fmts, events = content_codings(value, to_server, layer_limit)
                for e in events:
                    self._event(e)
                nxt = None
                for fmt in reversed(fmts):
                    nxt = _Layer(self, fmt, nxt)
                    self._layers.insert(0, nxt)
                self._decoding = bool(self._layers)
        if chunked:
            self._state = _SIZE
        elif length is not None:
            self._state, self._left = _LENGTH, max(0, length)
            if self._left == 0:
                self._state, self.done = _DONE, True
        else:
            self._state = _CLOSE

    # ------------------------------------------------------------------ input
    def as_bytes(self) -> bytes:
        """`data` as bytes, copied only when it grew since the last call: `data` only ever
        grows (appended, up to the limit), so its length says whether the copy is current.
        A body past its limit is asked for on every later packet of a long response.  Once
        complete (or full), `data` is that copy itself."""
        if len(self._bytes) != len(self.data):
            self._bytes = bytes(self.data)
            if self.done or self.failed or self.limit and len(self.data) >= self.limit:
                self.data = self._bytes      # it grows no more: one copy kept, not two
        return self._bytes

    def feed(self, data: bytes) -> int:
        """Take the next bytes of the direction; returns how many were this body's
        (the rest is the next message).  A failed body takes everything.  Each call
        is one piece of the stream as it arrived: libhtp's restarts and line limits
        depend on where the pieces end (feed(b"") marks an end, e.g. when the
        headers ended exactly at the end of a piece)."""
        if self.done:
            return 0
        if self.failed:
            self.raw_len += len(data)
            return len(data)
        if not isinstance(data, bytes):
            data = bytes(data)
        n, pos = len(data), 0
        while pos < n and not self.done and not self.failed:
            st = self._state
            if st == _LENGTH or st == _DATA:
                take = min(self._left, n - pos)
                self._piece(data, pos, take)
                pos += take
                self._left -= take
                if self._left == 0:
                    if st == _LENGTH:
                        self._complete()
                    else:
                        self._state = _DATA_END
            elif st == _CLOSE:
                self._piece(data, pos, n - pos)
                pos = n
            elif st == _DATA_END:
                lf = data.find(b"\n", pos)
                end = n if lf < 0 else lf + 1
                self._msg += end - pos
                pos = end
                if lf >= 0:
                    self._state = _SIZE
            elif st == _SIZE:
                pos = self._size_line(data, pos)
            else:
                pos = self._trailer(data, pos)
        if self.failed:
            pos = n
        elif self._state == _SIZE or self._state == _TRAILER:
            # libhtp 0.5.50 buffers a response's chunk-size or trailer line whenever a
            # piece ended in that state, a request's only when the line spans pieces
            self._carry = bool(self._line) or not self.to_server
        self.raw_len += pos
        return pos

    def take_content(self, data: bytes) -> bool:
        """`feed`, for the common piece that is body content alone: a plain body (no
        content coding) with more of it still to come than `data` holds (a length or a
        chunk not complete after it, or one running to the close).  Takes it all and
        answers True; anything else answers False and changes nothing (`feed` takes it)."""
        st = self._state
        n = len(data)
        if self._decoding or self.done or self.failed or not (st == _CLOSE or (st == _LENGTH or st == _DATA)
                                                              and self._left > n):
            return False
        self._piece(data, 0, n)
        if st != _CLOSE:
            self._left -= n
        self.raw_len += n
        return True

    def finish(self) -> None:
        """The direction ended: a body that runs to the end of the stream is complete;
        one cut short is complete as it is (`truncated`)."""
        if self.done or self.failed:
            return
        if self._state == _TRAILER and self._trailer_line is not None:
            self._add_trailer(None)
        if self._state != _CLOSE:
            self.truncated = True
            if self.to_server and self._state != _TRAILER:
                # libhtp completes a request cut short only in its trailer; otherwise its
                # decompressor is not flushed
                self._state, self.done = _DONE, True
                return
            if self._line and self._state in (_SIZE, _TRAILER) and not self.to_server:
                # libhtp hands a response's unfinished line to the body when the stream
                # ends ("Unexpected response body"): a trailer line through the
                # decompressors before they are flushed, a chunk-size line after they
                # are gone (so only an undecoded body gets it)
                line = bytes(self._line)
                self._line.clear()
                if self._state == _TRAILER:
                    self._piece(line, 0, len(line))
                    self._complete()
                else:
                    self._complete()
                    if not self._layers:
                        self._piece(line, 0, len(line))
                return
        self._complete()

    # ------------------------------------------------------------------ framing
    def _take_line(self, data: bytes, pos: int) -> tuple[bytes | None, int, bool]:
        """The next line (up to its LF) at data[pos:], its end, and whether libhtp had it
        buffered.  None while the line is incomplete (its bytes are kept), or when it
        broke the field limit (the body failed)."""
        n = len(data)
        lf = data.find(b"\n", pos)
        if self._state == _SIZE and not self.to_server and not self._line and not self._carry:
            # libhtp 0.5.50 ends an unbuffered response chunk-size line at its first byte
            # that is neither blank nor a hex digit (it is not chunked after all)
            i, stop = pos, (n if lf < 0 else lf)
            while i < stop and data[i] in _CTL:
                i += 1
            if i < stop and data[i] not in _HEX:
                lf = i
        if lf < 0:
            self._line += data[pos:]
            self._msg += n - pos
            if len(self._line) + self._skipped > self.line_limit:
                self._fail("http.request_field_too_long" if self.to_server else None)
            return None, n, True
        end = lf + 1
        carried = self._carry
        if self._line:
            self._line += data[pos:end]
            line = bytes(self._line)
            self._line.clear()
        else:
            line = data[pos:end]
        self._msg += end - pos
        if carried and len(line) + self._skipped > self.line_limit:
            # "Request buffer over the limit" (request_field_too_long); a response's
            # "Response the buffer limit" maps to no event in Suricata
            self._fail("http.request_field_too_long" if self.to_server else None)
            return None, end, True
        return line, end, carried

    def _size_line(self, data: bytes, pos: int) -> int:
        if not self._line:
            m = _PLAIN_SIZE.match(data, pos)
            if m is not None:                    # the common line, valid however it is read
                end = m.end()
                size = int(m.group(1), 16)
                self._msg += end - pos
                self._carry, self._skipped = False, 0
                if size:
                    self._state, self._left = _DATA, size
                else:
                    self._state = _TRAILER
                return end
        line, end, carried = self._take_line(data, pos)
        if line is None:
            return end
        size, ext = parse_chunk_size(line)
        if ext:
            self._event("http.request_chunk_extension")
        if size == -1 and not self.to_server:
            if carried:
                self._skipped += len(line)   # a skipped blank line stays in libhtp's buffer
            return end
        skipped = self._skipped
        self._carry, self._skipped = False, 0
        if size is None or size < 0:
            if self.to_server:
                self._fail("http.invalid_request_chunk_len")
                return end
            # the rest of the stream is the body, from the bad line on: the whole line when
            # it began unbuffered, else only from the start of this piece (libhtp goes back
            # by the length of its buffer, blank lines in it included)
            self._event("http.invalid_response_chunk_len")
            self._state = _CLOSE
            return max(0, end - len(line) - skipped)   # (libhtp counts these bytes twice)
        if size:
            self._state, self._left = _DATA, size
        else:
            self._state = _TRAILER
        return end

    def _trailer(self, data: bytes, pos: int) -> int:
        line, end, _ = self._take_line(data, pos)
        if line is None:
            return end
        self._carry = False
        if line in (b"\n", b"\r\n"):
            self._add_trailer(None)
            self._complete()
            return end
        line = line.rstrip(b"\r\n")
        if line[:1] in _FOLD:
            if self._trailer_line is None:
                self._event("http.invalid_request_field_folding" if self.to_server
                            else "http.invalid_response_field_folding")
                self._trailer_line = line.lstrip(b" \t\0")
            elif len(self._trailer_line) + len(line) <= self.line_limit:
                self._trailer_line += line
            return end
        self._add_trailer(line)
        if end == len(data) and not self.to_server:
            # libhtp peeks at the next byte for a folded continuation; at the end of a
            # piece there is none, and a response field is then taken as it is (a
            # request field waits for the next piece)
            self._add_trailer(None)
        return end

    def _add_trailer(self, line: bytes | None) -> None:
        """File the pending trailer field (complete now that no continuation follows)
        and keep `line` as the next one.  Parsed as libhtp parses a header field."""
        prev, self._trailer_line = self._trailer_line, line
        if prev is None:
            return
        side = "request" if self.to_server else "response"
        colon = prev.find(b":")
        if self.to_server:
            nul = prev.find(b"\0")
            if 0 <= nul < colon or (colon < 0 and nul >= 0):
                colon = -1              # a request field's colon is looked for up to a NUL
        if colon < 0:
            self._event(f"http.{side}_field_missing_colon")
            name, value = b"", prev
        else:
            name, value = prev[:colon].rstrip(b" \t"), prev[colon + 1:].strip(b" \t")
        if len(self.trailers) < TRAILER_MAX:
            self.trailers.append((name, value))
            self.trailer_lines.append(prev)

    # ------------------------------------------------------------------ content
    def _piece(self, data: bytes, pos: int, n: int) -> None:
        """`n` bytes of body content at data[pos:] (dechunked, still encoded)."""
        if n <= 0:
            return
        if not self._decoding:
            self._msg += n
            self._entity += n
            room = self.limit - len(self.data) if self.limit else n
            if room > 0:
                self.data += data[pos:pos + min(n, room)]
            return
        if not self.to_server:
            self._msg += n
        if self.limit and len(self.data) >= self.limit and self._entity > self.decode_budget:
            self._decoding = False        # full, and enough decoded to judge bombs: stop (module docstring)
        else:
            self._layers[0].decompress(data[pos:pos + n])
        if self.to_server:
            self._msg += n

    def _deliver(self, out: bytes) -> bool:
        """Decoded bytes reach the body (libhtp's decompressor callback): kept up to the
        limit, then the bomb check.  False stops the decompressors."""
        self._entity += len(out)
        if out:
            room = self.limit - len(self.data) if self.limit else len(out)
            if room > 0:
                self.data += out[:room]
        if self._entity > self.bomb_limit and self._entity > BOMB_RATIO * self._msg:
            self._event("http.compression_bomb")
            self._decoding = False
            return False
        if self.limit and len(self.data) >= self.limit and self._entity > self.decode_budget:
            self._decoding = False        # full, and enough decoded to judge bombs: stop (module docstring)
            return False
        return True

    def _complete(self) -> None:
        if self._decoding and self._layers:
            self._layers[0].end()
        self._state, self.done = _DONE, True

    def _fail(self, event: str | None) -> None:
        if event:
            self._event(event)
        self.failed = True

    def _event(self, name: str) -> None:
        if name not in self.events:
            self.events.append(name)
