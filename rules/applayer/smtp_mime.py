"""The MIME decoder of SMTP mails, as Suricata 7.0.10's (src/util-decode-mime.c,
src/util-base64.c, rust/src/mime/mod.rs), reduced to what detection reads: which
entities are attachments and their decoded bytes (file.data).

    dec = MimeDecoder(settings, sink)
    dec.parse_line(line, eol)     # each line of the DATA section, without its end of line
    dec.complete()                # the "." line

`sink(entity, chunk, begin, end)` gets the decoded data chunks of every entity, as
Suricata's data chunk callback: `begin` on an entity's first chunk, `end` on its
last (both on one chunk when the body is a single chunk).  It returns OK, or an
error code that puts the decoder in its error state as Suricata's would.

What is kept from Suricata, because it decides the bytes and when they are delivered:
- headers: a line of printable characters (33-126) then ':' starts a header; a line
  that does not, while a header is open, continues its value (appended as it is, no
  separator); a blank line ends the headers; a first line that is no header starts
  a body without headers.  Values are cut at `header_value_depth` bytes.  Only the
  last Content-Type, Content-Disposition and Content-Transfer-Encoding of an entity
  are used (Suricata prepends fields and finds the first).
- an entity is an attachment when Content-Disposition has a `filename` parameter, or
  else Content-Type has a `name` parameter (RFC 2231 sections `name*0`, `name*1` are
  joined); parameters are read after the first ';', `name=value` or `name="value"`,
  names matched exactly (case-sensitive), the last of a name wins, parsing stops at
  the first malformed one; a filename is cut at 255 bytes.
- Content-Transfer-Encoding containing "base64" (any case) decodes base64, else
  containing "quoted-printable" decodes QP; anything else is taken as it is.
- Content-Type with a `boundary` parameter makes a multipart entity (a boundary over
  254 bytes is a parse error); "message/" in the type opens an encapsulated message.
  A body line starting with "--" that contains "--" + boundary (any case, anywhere)
  is a boundary line; "--" right after the boundary ends the multipart.
- base64 (RFC 2045 mode): characters outside the alphabet are skipped, '=' counts as
  padding wherever it is (a block of 4 with p '=' gives 3 - p bytes, and decoding
  goes on after it), a remainder of under 4 characters waits for the next line and
  is padded with '=' at the body's end; blank lines right after the headers are
  skipped.
- quoted-printable: "=XY" with upper-case hex digits is decoded, a final '=' joins
  the next line, any other '=' is dropped (its characters stay); each line that has
  an end of line gets CRLF, a blank line keeps its own end of line.
- taken as it is: the lines with their own ends of line, less the last one before
  the boundary.
- chunks: decoded data is delivered in chunks of at most 3072 bytes, and per line
  for base64 and plain bodies, per 3070 bytes or blank line for QP.  Appending an
  empty chunk to an attachment in the middle of its body is an error in Suricata
  (FileAppendData refuses 0 bytes): the decoder then stops, as Suricata's.
Not kept: URL extraction, body MD5, header storage beyond the three headers above,
and the anomaly flags other than as counters (`anomalies`).
"""
from __future__ import annotations

OK, ERR_DATA, ERR_MEM, ERR_PARSE, ERR_STATE = 0, -1, -2, -3, -4

# entity content flags
IS_MSG, IS_ENV, IS_ENCAP, IS_BODYPART, IS_MULTIPART = 1, 2, 4, 8, 16
IS_ATTACHMENT, IS_BASE64, IS_QP, IS_TEXT, IS_HTML = 32, 64, 128, 256, 512

# anomaly flags
ANOM_INVALID_BASE64, ANOM_INVALID_QP, ANOM_LONG_HEADER_NAME, ANOM_LONG_HEADER_VALUE = 1, 2, 4, 8
ANOM_LONG_LINE, ANOM_LONG_ENC_LINE, ANOM_MALFORMED_MSG, ANOM_LONG_BOUNDARY, ANOM_LONG_FILENAME = \
    16, 32, 64, 128, 256
ANOMALY_EVENTS = ((ANOM_INVALID_BASE64, "mime_invalid_base64"), (ANOM_INVALID_QP, "mime_invalid_qp"),
                  (ANOM_LONG_LINE, "mime_long_line"), (ANOM_LONG_ENC_LINE, "mime_long_enc_line"),
                  (ANOM_LONG_HEADER_NAME, "mime_long_header_name"),
                  (ANOM_LONG_HEADER_VALUE, "mime_long_header_value"),
                  (ANOM_MALFORMED_MSG, "mime_malformed_msg"), (ANOM_LONG_BOUNDARY, "mime_long_boundary"),
                  (ANOM_LONG_FILENAME, "mime_long_filename"))

# parser states
HEADER_READY, HEADER_STARTED, HEADER_DONE, BODY_STARTED, BODY_DONE, BODY_END_BOUND, PARSE_DONE, \
    PARSE_ERROR = 1, 2, 3, 4, 5, 6, 7, 8

DATA_CHUNK_SIZE = 3072
MAX_LINE_LEN = 998
MAX_ENC_LINE_LEN = 76
MAX_HEADER_NAME = 75
BOUNDARY_BUF = 256
MAX_TOKEN_LEN = 255          # RS_MIME_MAX_TOKEN_LEN: filenames are cut there

_B64 = [-1] * 256
for _i, _c in enumerate(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"):
    _B64[_c] = _i
_B64_ALPHABET = frozenset(c for c in range(256) if _B64[c] >= 0 or c == 0x3D)
_HEX = {c: i for i, c in enumerate(b"0123456789ABCDEF")}
_HEADER_WS = b" \t\r\n"


# ---------------------------------------------------------------- header parameters
def _header_tokens(value: bytes) -> dict | None:
    """The `name=value` parameters after the first ';' (rust mime_parse_header_tokens),
    None when the value has no ';'."""
    semi = value.find(b";")
    if semi < 0:
        return None
    rest = value[semi + 1:]
    tokens: dict = {}
    n = len(rest)
    i = 0
    while i < n:
        j = i
        while j < n and rest[j] in _HEADER_WS:
            j += 1
        if j == n:
            break                               # only whitespace left: incomplete
        eq = rest.find(b"=", j)
        if eq < 0:
            break
        name = rest[j:eq]
        k = eq + 1
        if k < n and rest[k] == 0x22:           # "quoted"
            close = rest.find(b'"', k + 1)
            if close < 0:
                break
            val, k = rest[k + 1:close], close + 1
        elif k == n:
            break                               # nothing after '=': incomplete
        else:
            sc = rest.find(b";", k)
            if sc >= 0:
                val, k = rest[k:sc], sc
            else:
                val, k = rest[k:], n
        if k < n and rest[k] == 0x3B:
            k += 1
        tokens[name] = val
        i = k
    return tokens


def header_token(value: bytes, token: bytes) -> bytes | None:
    """A parameter of a header value (rs_mime_find_header_token), RFC 2231 sections
    joined; None when absent."""
    tokens = _header_tokens(value)
    if tokens is None:
        return None
    got = tokens.get(token)
    if got is not None:
        return got
    first = tokens.get(token + b"*0")
    if first is None:
        return None
    out = bytearray(first)
    seen = 1
    while True:
        nxt = tokens.get(token + b"*" + str(seen).encode())
        if nxt is None:
            return bytes(out)
        out += nxt
        seen += 1


def _first_token(value: bytes) -> bytes:
    """The content type without its parameters (GetToken with " \\r\\n;")."""
    n = len(value)
    i = 0
    while i < n and value[i] in b" \r\n;":
        i += 1
    j = i
    while j < n and value[j] not in b" \r\n;" and value[j] != 0:
        j += 1
    return value[i:j]


# ---------------------------------------------------------------- base64
def decode_base64(src: bytes, avail: int) -> tuple[bool, int, bytes]:
    """Suricata's DecodeBase64 in RFC 2045 mode into `avail` bytes of room:
    (buffer full, bytes of `src` consumed, decoded bytes)."""
    out = bytearray()
    padding = bbidx = sp = leading_sp = 0
    b64 = [0, 0, 0, 0]
    consumed = 0
    full = False
    for c in src:
        val = _B64[c]
        if val < 0:
            if c != 0x3D:
                if bbidx == 0:
                    leading_sp += 1
                sp += 1
                continue
            padding += 1
        b64[bbidx] = max(0, val)
        bbidx += 1
        if bbidx == 4:
            n = 3 - (padding if padding < 4 else 3)
            if avail < len(out) + n:
                full = True
                break
            if avail - len(out) < 3:
                return True, consumed, bytes(out)
            v = (b64[0] << 18) | (b64[1] << 12) | (b64[2] << 6) | b64[3]
            out += v.to_bytes(3, "big")[:n]
            bbidx = padding = 0
            consumed += 4 + sp
            sp = leading_sp = 0
            b64 = [0, 0, 0, 0]
    consumed += leading_sp
    return full, consumed, bytes(out)


# ---------------------------------------------------------------- entities
class Entity:
    __slots__ = ("anomalies", "fields", "filename", "flags")

    def __init__(self, flags: int = 0) -> None:
        self.flags = flags
        self.fields: dict[bytes, bytes] = {}     # the headers used, by lower-case name: the last one
        self.filename = b""
        self.anomalies = 0


class _Node:
    __slots__ = ("bdef", "entity", "is_encap")

    def __init__(self, entity: Entity) -> None:
        self.entity = entity
        self.bdef: bytes | None = None           # the boundary its children are separated by
        self.is_encap = False


_KEPT = (b"content-type", b"content-disposition", b"content-transfer-encoding")


class MimeDecoder:
    """One mail's MIME parse state (MimeDecParseState)."""

    __slots__ = (
        "body_begin",
        "body_end",
        "bvremain",
        "chunk",
        "eol",
        "found_child",
        "hname",
        "hvalue",
        "hvlen",
        "msg",
        "s",
        "sink",
        "stack",
        "state",
    )

    def __init__(self, settings, sink) -> None:
        self.s = settings
        self.sink = sink
        self.msg = Entity(IS_MSG)
        self.stack = [_Node(self.msg)]           # top is the last
        self.state = HEADER_READY
        self.hname: bytes | None = None
        self.hvalue: bytearray | None = None
        self.hvlen = 0
        self.bvremain = bytearray()               # base64 characters waiting for a block of 4
        self.chunk = bytearray()                  # decoded data not delivered yet
        self.body_begin = 0
        self.body_end = 0
        self.found_child = 0
        self.eol = b""                            # the current line's end of line

    # -- public
    def parse_line(self, line: bytes, eol: bytes) -> int:
        """One line of the mail, without its end of line `eol` (b"" for a line cut short)."""
        self.eol = eol
        ret = self._entity(line)
        if ret != OK:
            self.state = PARSE_ERROR
        return ret

    def complete(self) -> int:
        """The end of the mail (MimeDecParseComplete)."""
        if self.state == PARSE_ERROR:
            return ERR_STATE
        ret = self._store_header()
        if ret != OK:
            return ret
        ret = self._body_complete()
        if ret != OK:
            return ret
        stack = self.stack
        if not stack:
            self._anomaly(ANOM_MALFORMED_MSG, msg_only=True)
            return ERR_DATA
        if stack[-1].is_encap:
            stack.pop()
            if not stack:
                self._anomaly(ANOM_MALFORMED_MSG, msg_only=True)
                return ERR_DATA
        if len(stack) > 1:
            self._anomaly(ANOM_MALFORMED_MSG, msg_only=True)
        self.state = PARSE_DONE
        return OK

    @property
    def anomalies(self) -> int:
        return self.msg.anomalies

    # -- internals
    def _anomaly(self, flag: int, msg_only: bool = False) -> None:
        if not msg_only and self.stack:
            self.stack[-1].entity.anomalies |= flag
        self.msg.anomalies |= flag

    def _entity(self, buf: bytes) -> int:
        if self.state == PARSE_ERROR:
            return ERR_STATE
        if not self.stack:
            return ERR_DATA
        if len(buf) > MAX_LINE_LEN:
            self._anomaly(ANOM_LONG_LINE)
        if self.state in (HEADER_READY, HEADER_STARTED):
            return self._headers(buf)
        return self._body(buf)

    def _deliver(self) -> int:
        """ProcessDecodedDataChunk: hand the chunk to the sink."""
        if not self.stack:
            return ERR_DATA
        ret = self.sink(self.stack[-1].entity, bytes(self.chunk), self.body_begin, self.body_end)
        self.chunk.clear()
        self.body_begin = 0
        return ret

    # headers
    def _store_header(self) -> int:
        if self.hname is not None or self.hvalue is not None:
            val = bytes(self.hvalue) if self.hvalue else None
            ret = OK
            if val is not None:
                if self.hname is None:
                    ret = ERR_PARSE
                elif self.stack:
                    name = self.hname.lower()
                    if name in _KEPT:
                        self.stack[-1].entity.fields[name] = val
                else:
                    ret = ERR_DATA
            self.hname = None
            self.hvalue = None
            self.hvlen = 0
            return ret
        return OK

    def _add_value(self, data: bytes) -> None:
        depth = self.s.header_value_depth
        vlen = len(data)
        if self.hvlen + vlen > depth:
            vlen = depth - self.hvlen
            self._anomaly(ANOM_LONG_HEADER_VALUE)
        if vlen > 0:
            if self.hvalue is None:
                self.hvalue = bytearray()
            self.hvalue += data[:vlen]
            self.hvlen += vlen

    def _find_header(self, buf: bytes) -> int:
        n = len(buf)
        hlen = 0
        found = False
        for c in buf:
            if c == 0:
                break
            if c != 0x3A and 33 <= c <= 126:
                hlen += 1
            elif hlen > 0 and c == 0x3A:
                found = True
                break
            else:
                break
        finish = new = False
        hval = -1
        if found:
            if hlen > MAX_HEADER_NAME:
                self._anomaly(ANOM_LONG_HEADER_NAME)
            hval = hlen + 1
            if hval >= n:
                hval = -1
            else:
                while buf[hval] == 0x20:
                    if hval >= n - 1:
                        hval = -1
                        break
                    hval += 1
            if self.state == HEADER_STARTED:
                finish = True
            new = True
            self.state = HEADER_STARTED
        elif n == 0:
            self.state = HEADER_DONE
            finish = True
        elif self.state == HEADER_STARTED:
            self._add_value(buf)
        else:
            # a body without headers
            self.state = BODY_STARTED
            self.body_begin = 1
            self.body_end = 0
            ret = self._body_line(buf)
            if ret != OK:
                return ret
        if finish:
            ret = self._store_header()
            if ret != OK:
                return ret
        if new:
            self.hname = buf[:hlen]
            if self.hvalue is not None:
                return ERR_DATA
            if hval >= 0:
                self._add_value(buf[hval:])
        return OK

    def _headers(self, buf: bytes) -> int:
        ret = self._find_header(buf)
        if ret != OK:
            return ret
        if self.state != HEADER_DONE:
            return OK
        node = self.stack[-1]
        entity = node.entity
        fields = entity.fields
        cte = fields.get(b"content-transfer-encoding")
        if cte is not None:
            low = cte.lower()
            if b"base64" in low:
                entity.flags |= IS_BASE64
            elif b"quoted-printable" in low:
                entity.flags |= IS_QP
        disp = fields.get(b"content-disposition")
        if disp is not None:
            name = header_token(disp, b"filename")
            if name is not None:
                self._attachment(entity, name)
        ctype = fields.get(b"content-type")
        if ctype is not None:
            bound = header_token(ctype, b"boundary")
            if bound is not None:
                self.found_child = 1
                entity.flags |= IS_MULTIPART
                if len(bound) > BOUNDARY_BUF - 2:
                    node.entity.anomalies |= ANOM_LONG_BOUNDARY
                    return ERR_PARSE
                node.bdef = bound
            if not entity.flags & IS_ATTACHMENT:
                name = header_token(ctype, b"name")
                if name is not None:
                    self._attachment(entity, name)
            kind = _first_token(ctype).lower()
            if kind:
                if b"message/" in kind:
                    entity.flags |= IS_ENV
                    child = Entity(IS_ENCAP | IS_MSG)
                    top = _Node(child)
                    top.is_encap = True
                    self.stack.append(top)
                    self.state = HEADER_READY
                elif b"multipart/" in kind:
                    entity.flags |= IS_MULTIPART
                elif b"text/plain" in kind:
                    entity.flags |= IS_TEXT
                elif b"text/html" in kind:
                    entity.flags |= IS_HTML
        self.body_begin = 1
        self.body_end = 0
        return OK

    def _attachment(self, entity: Entity, name: bytes) -> None:
        entity.flags |= IS_ATTACHMENT
        if len(name) > MAX_TOKEN_LEN:
            name = name[:MAX_TOKEN_LEN]
            self._anomaly(ANOM_LONG_FILENAME)
        entity.filename = name

    # body
    def _body(self, buf: bytes) -> int:
        n = len(buf)
        if n == 0:
            if self.state == BODY_END_BOUND:
                return OK
            if self.state == HEADER_DONE and self.s.decode_base64 and self.stack[-1].entity.flags & IS_BASE64:
                return OK
        stack = self.stack
        i = len(stack) - 1
        if self.state == BODY_END_BOUND or stack[i].bdef is None:
            i -= 1
            while i >= 0 and stack[i].bdef is None:
                i -= 1
        found = True
        if i >= 0 and n > 1 and buf[0] == 0x2D and buf[1] == 0x2D:
            bdef = stack[i].bdef
            if len(bdef) + 2 > BOUNDARY_BUF:
                stack[-1].entity.anomalies |= ANOM_LONG_BOUNDARY
                return ERR_PARSE
            if (b"--" + bdef).lower() in buf.lower():
                found = False
                ret = self._boundary(buf, len(bdef))
                if ret != OK:
                    return ret
        if found:
            self.state = BODY_STARTED
            return self._body_line(buf)
        return OK

    def _body_complete(self) -> int:
        if not self.stack:
            return ERR_DATA
        self.body_end = 1
        if self.bvremain:
            self._b64_remainder(b"", True)
        if not self.stack[-1].entity.flags & (IS_BASE64 | IS_QP):
            self.chunk.clear()                   # the last end of line belongs to the boundary
        ret = self._deliver()
        self.body_begin = 0
        self.body_end = 0
        return ret

    def _boundary(self, buf: bytes, bdef_len: int) -> int:
        stack = self.stack
        if self.state != BODY_END_BOUND:
            ret = self._body_complete()
            if ret != OK:
                return ret
        else:
            self.state = HEADER_READY
        rest = buf[bdef_len + 2:]
        top = stack[-1]
        if top.is_encap and not top.bdef:
            if len(stack) < 2:
                return ERR_DATA
            if not stack[-2].bdef:
                stack.pop()
        if len(rest) > 1 and rest[0] == 0x2D and rest[1] == 0x2D:
            stack.pop()
            if not stack:
                return ERR_DATA
            if stack[-1].is_encap and stack[-1].bdef:
                stack.pop()
                if not stack:
                    return ERR_DATA
            self.state = BODY_END_BOUND
        elif self.found_child:
            stack.append(_Node(Entity(IS_BODYPART)))
            self.found_child = 0
        else:
            if len(stack) < 2:
                return ERR_DATA
            stack.pop()
            stack.append(_Node(Entity(IS_BODYPART)))
        if self.state != BODY_END_BOUND:
            self.state = HEADER_READY
        return OK

    def _body_line(self, buf: bytes) -> int:
        flags = self.stack[-1].entity.flags
        if self.s.decode_base64 and flags & IS_BASE64:
            return self._b64_line(buf)
        if self.s.decode_quoted_printable and flags & IS_QP:
            return self._qp_line(buf)
        ret = OK
        chunk = self.chunk
        off = 0
        n = len(buf)
        while off < n:
            take = min(DATA_CHUNK_SIZE - len(chunk), n - off)
            chunk += buf[off:off + take]
            off += take
            if len(chunk) == DATA_CHUNK_SIZE:
                ret = self._deliver()
        if ret == OK:
            ret = self._deliver()
        self.chunk[:] = self.eol                 # kept for the next line (dropped at the body's end)
        return ret

    def _qp_line(self, buf: bytes) -> int:
        n = len(buf)
        if n > MAX_ENC_LINE_LEN:
            self._anomaly(ANOM_LONG_ENC_LINE)
        chunk = self.chunk
        if n == 0:
            chunk += self.eol
            return self._deliver()
        ret = OK
        eol = bool(self.eol)
        i = 0
        while i < n:
            c = buf[i]
            remaining = n - i
            if c != 0x3D:
                chunk.append(c)
                if remaining == 1 and eol:
                    chunk += b"\r\n"
            elif remaining > 1:
                if remaining < 3:
                    self._anomaly(ANOM_INVALID_QP)
                else:
                    h1 = _HEX.get(buf[i + 1])
                    h2 = _HEX.get(buf[i + 2])
                    if h1 is None or h2 is None:
                        self._anomaly(ANOM_INVALID_QP)
                    else:
                        chunk.append((h1 << 4) | h2)
                        if remaining == 3 and eol:
                            chunk += b"\r\n"
                        i += 2
            i += 1
            if DATA_CHUNK_SIZE - len(chunk) < 3:
                ret = self._deliver()
        return ret

    def _b64_copy_remainder(self, buf: bytes, start: int) -> int:
        rem = self.bvremain
        for c in buf[start:]:
            if c in _B64_ALPHABET:
                if len(rem) >= 4:
                    return ERR_DATA
                rem.append(c)
        return OK

    def _b64_remainder(self, buf: bytes, force: bool) -> int:
        """ProcessBase64Remainder: complete the waiting characters to a block of 4 from
        `buf` (or with '=' when `force`) and decode it; the bytes of `buf` used."""
        used = 0
        block = bytearray(c for c in self.bvremain if c in _B64_ALPHABET)
        if buf and len(block) != 4:
            for c in buf:
                if len(block) >= 4:
                    break
                if c in _B64_ALPHABET:
                    block.append(c)
                used += 1
            self.bvremain[:] = block
        elif not force and len(block) != 4:
            return 0
        if force and len(block) != 4:
            self.bvremain += b"=" * (4 - len(self.bvremain))
        if DATA_CHUNK_SIZE - len(self.chunk) < 3:
            self._deliver()
        if len(self.bvremain) == 4 or force:
            _full, _used, out = decode_base64(bytes(self.bvremain), DATA_CHUNK_SIZE - len(self.chunk))
            if out:
                self.chunk += out
                if DATA_CHUNK_SIZE - len(self.chunk) < 3:
                    self._deliver()
            self.bvremain.clear()
        return used

    def _b64_line(self, buf: bytes) -> int:
        n = len(buf)
        if n > MAX_ENC_LINE_LEN:
            self._anomaly(ANOM_LONG_ENC_LINE)
        if len(self.bvremain) + n < 4:
            return self._b64_copy_remainder(buf, 0)
        ret = OK
        remaining, offset = n, 0
        if self.bvremain:
            used = self._b64_remainder(buf, False)
            if n - used < 4:
                return self._b64_copy_remainder(buf, used)
            remaining -= used
            offset = used
        while remaining >= 4:
            _full, used, out = decode_base64(buf[offset:offset + remaining], DATA_CHUNK_SIZE - len(self.chunk))
            left = remaining - used
            if out:
                self.chunk += out
                if DATA_CHUNK_SIZE - len(self.chunk) < 3:
                    ret = self._deliver()
                    if ret != OK:
                        break
            if used == 0 and left > 4:
                ret = self._b64_copy_remainder(buf, offset)
                break
            if 0 < left <= 4:
                ret = self._b64_copy_remainder(buf, offset + used)
                break
            remaining = left
            offset += used
        if ret == OK and self.chunk:
            ret = self._deliver()
        return ret
