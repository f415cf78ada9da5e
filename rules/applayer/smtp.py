"""SMTP: protocol detection, the parser, and file.data (the mails' attachments), as
Suricata 7.0.10 has them (src/app-layer-smtp.c; the MIME decoder is
rules.applayer.smtp_mime).  Checked with crafted pcaps through /usr/bin/suricata
(tests/replay/app_smtp.py).

Most of ET Open's `alert smtp` rules are content/pcre on the stream: they need the flow
detected as SMTP, and the parser's verdicts Suricata acts on (a parser error drops the
flow in IPS mode, app-layer.error-policy).  The others use file.data.

Detection (`probe`): Suricata registers patterns only, no probing parser, no ports:
"EHLO", "HELO" or "QUIT" at the start of the client's data, case-insensitive.  The
server's 220 banner decides nothing: a server that speaks first is held by the stage
until the client's first command (rules.applayer: a direction every protocol refused
waits for the other), and is then parsed first.

Lines.  Commands and replies are split at LF (a CR before it is dropped); a line of 4096
bytes or more is cut there (event smtp.truncated_line), the rest of that call's data is
skipped and, when the cut line had no LF yet, everything up to the next LF.  In the
DATA section, once the MIME headers of the current part are read, lines also end at a
lone CR and are not limited, and the end of a packet's data ends a line too (the rest
continues as the next "line"), except for data starting with "--" (a possible
boundary), which waits for its LF.  Suricata's quirk for a cut line without LF (it is
taken from the start of that call's data) is kept.

Transactions: one per mail.  A command opens a transaction when there is none or the
current one is complete (RSET and QUIT then stay in it); at most `max_tx` + 1 are made
per flow, then the parser gives up.  Every command is queued to be matched with its
reply.  DATA answered 354 (or at once when the server announced PIPELINING) enters the
data mode; the line "." ends it and completes the transaction; RSET answered 250
completes it too.  BDAT n enters the data mode for n bytes (its data is not decoded):
"BDAT" with nothing after it, or data running past the size, makes the parser give up
(a size that is not a number is 0).  A server reply must start with a known code (211
214 220 221 235 250-252 334 354 421 450-452 455 500-504 550-555) and have 3 bytes at
least, else the parser gives up.  STARTTLS answered 220: Suricata hands the flow to TLS;
this parser then ignores the connection (`upgrade` is "tls").  The stage has no protocol
change, so the flow stays smtp: when a real TLS handshake follows, Suricata's flow is tls
and its `alert smtp` rules stop while ipsbridge's go on (data that is not TLS keeps the
flow smtp in Suricata too).
Events are Suricata's, named smtp.<name> in lower case, raised only while the mail
has a transaction (Suricata sets them on it).

The stage differs from Suricata on one more point that shows with SMTP: after the client's
command made the flow SMTP, Suricata hands the server's data to the parser only once it
holds 8 bytes (its protocol detection runs on that direction first and waits for its
pattern depth, 8 to the client in 7.0.10); the stage hands it over at once.  A server
whose first reply is shorter (a 4-byte "25\r\n") is parsed later by Suricata.

file.data (to server): the attachments of the mail being sent, decoded (base64,
quoted-printable), one buffer per attachment (a multi-buffer).  An entity is an
attachment when it has a file name (Content-Disposition filename, or Content-Type
name); the body text is not.  As Suricata's file inspection for SMTP, an attachment is
inspected once it is complete, or has `content_inspect_min_size` bytes (or
`content_limit`), or the flow ends; after that, each inspection sees only the bytes
added since the last (`SmtpFile.inspected`), so a content spanning two such windows is
not found.  Suricata builds the window when detection reads file.data (a packet of the
client's direction after the data was parsed: inline the same packet, in IDS mode a
later one); here too: `_file_data` serves it, and the next data fed (or `end`) marks it
inspected.  An attachment never completed is inspected once the app layer learns the
client's direction ended (`end`): at the flow's end, as Suricata, or when the session
closes (FIN, RST) before that, where Suricata still waits for the flow's end.
(Suricata gives a later window's absolute position to depth and startswith; ipsbridge's
buffers start at 0, so `startswith` could match at the start of a later window of an
attachment over 32 KiB.)  Memory: an attachment's bytes are kept until inspected, at
most `max_pending` (past that, when detection does not read them, the oldest go as if
inspected).
"""
from __future__ import annotations

from dataclasses import dataclass

from rules.applayer import smtp_mime as mime
from rules.applayer.base import DONE, BufferDef, Tx
from rules.applayer.base import Parser as _Parser

PROTO = "smtp"
IPPROTOS = (6,)
HEADER_NAMES = ("smtp",)
ALIASES: dict = {}

CLIENT_PATTERNS = (b"EHLO", b"HELO", b"QUIT")
LINE_LIMIT = 4096            # SMTP_LINE_BUFFER_LIMIT
REPLY_CODES = frozenset(b"211 214 220 221 235 250 251 252 334 354 421 450 451 452 455 500 501 502 503 504 "
                        b"550 551 552 553 554 555".split())
MAX_PENDING_COMMANDS = 0xFFFF

# parser state flags
DATA_MODE = 0x01             # the client sends mail data (DATA, BDAT) or TLS (STARTTLS)
FIRST_REPLY_SEEN = 0x04
MULTILINE = 0x08             # inside a multi-line reply
PIPELINING_SERVER = 0x10

# commands, as queued for their replies
CMD_NONE, CMD_STARTTLS, CMD_DATA, CMD_BDAT, CMD_DATA_END, CMD_OTHER, CMD_RSET = 0, 1, 2, 3, 4, 5, 6

_OK, _INCOMPLETE, _ERROR = 0, 1, 2
_WS = b" \t\r\n\v\f"


@dataclass(frozen=True, slots=True)
class Settings:
    """`app-layer.protocols.smtp` (Suricata 7.0's defaults)."""
    max_tx: int = 256                        # max-tx
    decode_mime: bool = True                 # mime.decode-mime
    decode_base64: bool = True               # mime.decode-base64
    decode_quoted_printable: bool = True     # mime.decode-quoted-printable
    header_value_depth: int = 2000           # mime.header-value-depth
    content_limit: int = 100000              # inspected-tracker.content-limit
    content_inspect_min_size: int = 32768    # inspected-tracker.content-inspect-min-size
    max_pending: int = 4 * 32768             # ipsbridge's own bound on an attachment's bytes not inspected


DEFAULTS = Settings()


# ---------------------------------------------------------------- detection
def probe(data: bytes, to_server: bool, sport: int, dport: int, ipproto: int = 6,
          settings: Settings | None = None) -> bool | None:
    """SMTP from the client's first command (EHLO, HELO, QUIT); the server's data never
    decides.  None while the client sent less than 4 bytes of a pattern."""
    if not to_server:
        return False
    if not data:
        return None
    head = bytes(data[:4]).upper()
    if head in CLIENT_PATTERNS:
        return True
    if len(head) < 4 and any(p.startswith(head) for p in CLIENT_PATTERNS):
        return None
    return False


# ---------------------------------------------------------------- transactions
class SmtpFile:
    """An attachment: its bytes not inspected yet, its size, how far it was inspected, and
    how far the window detection read since the last data reaches (`serving`)."""

    __slots__ = ("closed", "inspected", "name", "pending", "serving", "size", "window")

    def __init__(self, name: bytes) -> None:
        self.name = name
        self.pending = bytearray()
        self.size = 0
        self.inspected = 0
        self.closed = False
        self.serving = -1
        self.window: bytes | None = None      # bytes(pending), built once per window

    def add(self, data: bytes, limit: int) -> None:
        if data:
            self.pending += data
            self.size += len(data)
            self.window = None
            over = len(self.pending) - limit
            if over > 0:
                del self.pending[:over]
                self.inspected += over
                self.serving = -1


class SmtpTx(Tx):
    """One mail (or the commands before it, or after the last one)."""

    __slots__ = ("eof", "files", "has_mail_from", "is_data", "is_done", "limits", "mime")

    def __init__(self, tx_id: int) -> None:
        super().__init__(tx_id)
        self.is_done = False
        self.is_data = False          # DATA was sent for it
        self.mime: mime.MimeDecoder | None = None
        self.has_mail_from = False
        self.files: list[SmtpFile] = []
        self.limits = (0, 0)          # (content_limit, content_inspect_min_size)
        self.eof = False              # the client's direction ended: every attachment is inspected

    def complete(self) -> None:
        self.is_done = True
        self.progress = [DONE, DONE]


class _Input:
    """One call's data as Suricata's SMTPInput (`buf` what is not consumed yet plus the
    new bytes), and the line state that lasts a call (`lf_found` is never cleared)."""

    __slots__ = ("buf", "consumed", "lf_found", "skipped")

    def __init__(self, buf: bytes, skipped: int = 0) -> None:
        self.buf = buf
        self.consumed = 0
        self.lf_found = False
        self.skipped = skipped        # bytes of the first line not kept after buf[:LINE_LIMIT]


def _file_data(tx) -> list | None:
    """file.data: per attachment, the bytes added since its last inspection, when it can be
    inspected (complete, large enough, or the flow's end)."""
    out = []
    content_limit, min_size = tx.limits
    for f in tx.files:
        if f.size == f.inspected:
            continue
        if f.size < content_limit and f.size < min_size and not tx.eof and not f.closed:
            continue
        if f.window is None:
            f.window = bytes(f.pending)
        f.serving = f.size
        out.append(f.window)
    return out or None


# ---------------------------------------------------------------- the parser
class Parser(_Parser):
    proto = PROTO

    def __init__(self, settings: Settings | None = None, ipproto: int = 6) -> None:
        super().__init__()
        self.s = settings or DEFAULTS
        self.held = [b"", b""]            # per direction: data not consumed (a partial line)
        self.skipped = [0, 0]             # per direction: bytes of the held line dropped past LINE_LIMIT
        self.discard = [False, False]     # per direction: skip up to the next LF (a cut line)
        self.flags = 0
        self.cmds: list[int] = []         # commands waiting for their reply
        self.cmds_idx = 0
        self.current = CMD_NONE           # the last command
        self.curr_tx: SmtpTx | None = None
        self.tx_cnt = 0
        self.helo = False
        self.bdat_len = 0
        self.bdat_idx = 0
        self.upgrade = ""                 # "tls" once STARTTLS was accepted: the protocol the flow goes to

    # -- public
    def feed(self, data: bytes, to_server: bool) -> None:
        if self.failed or self.upgrade or not data:
            return
        inp = _Input(self.held[to_server] + bytes(data), self.skipped[to_server])
        self.held[to_server] = b""
        self.skipped[to_server] = 0
        self._inspected()
        ok = self._client(inp) if to_server else self._server(inp)
        if not ok:
            self.failed = True
            self.held = [b"", b""]
        elif inp.consumed < len(inp.buf):
            rest = inp.buf[inp.consumed:]
            skipped = inp.skipped if inp.consumed == 0 else 0
            if len(rest) > LINE_LIMIT:
                # a line skipped up to its LF (Suricata holds it all): only its first
                # LINE_LIMIT bytes and its length can still matter
                skipped += len(rest) - LINE_LIMIT
                rest = rest[:LINE_LIMIT]
            self.held[to_server] = rest
            self.skipped[to_server] = skipped

    def end(self, to_server: bool) -> None:
        self.held[to_server] = b""
        self.skipped[to_server] = 0
        self._inspected()
        if to_server:
            for tx in self.txs:
                tx.eof = True

    # -- helpers
    def _tx(self) -> SmtpTx | None:
        """The current transaction, None once the stage freed it (as Suricata's curr_tx)."""
        tx = self.curr_tx
        if tx is not None and (not self.txs or self.txs[-1] is not tx):
            self.curr_tx = tx = None
        return tx

    def _ev(self, name: str) -> None:
        if self._tx() is not None:
            self.event("smtp." + name)

    def _inspected(self) -> None:
        """The windows detection read since the last data are inspected now (Suricata's
        content_inspected); complete attachments inspected to their end go."""
        for tx in self.txs:
            if not tx.files:
                continue
            for f in tx.files:
                if f.serving >= 0:
                    del f.pending[:f.serving - f.inspected]
                    f.inspected = f.serving
                    f.serving = -1
                    f.window = None
            tx.files = [f for f in tx.files if not (f.closed and f.size == f.inspected)]

    # -- lines (SMTPGetLine)
    def _line(self, inp: _Input, d: int) -> tuple[int, bytes, bytes]:
        """(result, line, end of line)."""
        buf = inp.buf
        n = len(buf) - inp.consumed
        if n <= 0:
            return _ERROR, b"", b""
        lf = buf.find(b"\n", inp.consumed)
        if lf < 0:
            if not self.discard[d] and n >= LINE_LIMIT:
                return _OK, buf[:LINE_LIMIT], b""          # from the start of the call's data (sic)
            return _INCOMPLETE, b"", b""
        start = inp.consumed
        inp.consumed = lf + 1
        inp.lf_found = True
        if lf + 1 - start + (inp.skipped if start == 0 else 0) >= LINE_LIMIT:
            return _OK, buf[start:start + LINE_LIMIT], b""
        if self.discard[d]:
            self.discard[d] = False
            return _OK, b"", b""
        if lf > start and buf[lf - 1] == 0x0D:
            return _OK, buf[start:lf - 1], b"\r\n"
        return _OK, buf[start:lf], b"\n"

    # -- the client (SMTPParse to server)
    def _client(self, inp: _Input) -> bool:
        if self.current in (CMD_DATA, CMD_BDAT) and self.flags & DATA_MODE:
            ret = self._data_lines(inp)
            if ret == 0 and inp.consumed == len(inp.buf):
                return True
            if ret < 0:
                return False
        while True:
            got, line, eol = self._line(inp, 1)
            if got == _INCOMPLETE:
                return True
            if got == _ERROR:
                inp.consumed = len(inp.buf)
                return True
            if self._request(line, eol) != 0:
                return False
            if not eol and len(line) == LINE_LIMIT:
                if not inp.lf_found:
                    self.discard[1] = True
                self._ev("truncated_line")
                inp.consumed = len(inp.buf)
                return True
            if len(inp.buf) > inp.consumed and self.current == CMD_DATA and self.flags & DATA_MODE:
                ret = self._data_lines(inp)
                if ret == 0 and inp.consumed == len(inp.buf):
                    return True
                if ret < 0:
                    return False

    def _data_lines(self, inp: _Input) -> int:
        """SMTPPreProcessCommands: lines of the data mode, ended by CR, LF or CRLF or by the
        end of the data; 1 hands back to the line reader (MIME headers, a possible boundary)."""
        tx = self._tx()
        if tx is not None and tx.mime is not None and tx.mime.state < mime.HEADER_DONE:
            return 1
        buf = inp.buf
        end = len(buf)
        i = inp.consumed
        while i < end:
            c = buf[i]
            complete = False
            dl = 0
            if c == 0x0D:
                if i < end - 1 and buf[i + 1] == 0x0A:
                    i += 1
                    dl = 2
                else:
                    dl = 1
                complete = True
            elif c == 0x0A:
                dl = 1
                complete = True
            if complete or i == end - 1:
                rest = end - inp.consumed
                if buf[inp.consumed] == 0x2D and (rest == 1 or buf[inp.consumed + 1] == 0x2D):
                    return 1
                start = inp.consumed
                inp.consumed = i + 1
                if self._request(buf[start:i + 1 - dl], buf[i + 1 - dl:i + 1]) == -1:
                    return -1
                if not self.flags & DATA_MODE:
                    break
            i += 1
        return 0

    def _new_tx(self) -> SmtpTx | None:
        if self.tx_cnt > self.s.max_tx:
            return None
        tx = SmtpTx(self.tx_cnt)
        tx.limits = (self.s.content_limit, self.s.content_inspect_min_size)
        self.tx_cnt += 1
        self.txs.append(tx)
        self.curr_tx = tx
        return tx

    def _queue(self, cmd: int) -> int:
        cmds = self.cmds
        if cmds and cmds[-1] in (CMD_STARTTLS, CMD_DATA):
            self._ev("invalid_pipelined_sequence")
        if len(cmds) + 1 > MAX_PENDING_COMMANDS:
            return -1
        cmds.append(cmd)
        return 0

    def _request(self, line: bytes, eol: bytes) -> int:
        """SMTPProcessRequest: 0, or -1 when the parser gives up."""
        if not line and not eol:
            return 0                      # the end of a cut line
        tx = self._tx()
        low = line[:9].lower()
        if tx is None or (tx.is_done and not (not self.flags & DATA_MODE and low[:4] in (b"rset", b"quit"))):
            tx = self._new_tx()
            if tx is None:
                return -1
        if not self.flags & FIRST_REPLY_SEEN:
            self._ev("no_server_welcome_message")
        if not self.flags & DATA_MODE:
            r = 0
            n = len(line)
            if n >= 8 and line[:8].lower() == b"starttls":
                self.current = CMD_STARTTLS
            elif n >= 4 and low[:4] == b"data":
                self.current = CMD_DATA
                if tx.is_data:
                    self._ev("unparsable_content")
                    return 0
                if self.s.decode_mime:
                    tx.mime = mime.MimeDecoder(self.s, self._sink(tx))
                tx.is_data = True
                if self.flags & PIPELINING_SERVER:
                    self.flags |= DATA_MODE
            elif n >= 4 and low[:4] == b"bdat":
                if not self._bdat_size(line):
                    return -1
                self.current = CMD_BDAT
                self.flags |= DATA_MODE
            elif n >= 4 and low[:4] in (b"helo", b"ehlo"):
                if self.helo:
                    self._ev("duplicate_fields")
                self.helo = True
                self.current = CMD_OTHER
            elif n >= 9 and low == b"mail from":
                if tx.has_mail_from:
                    self._ev("duplicate_fields")
                tx.has_mail_from = True
                self.current = CMD_OTHER
            elif n >= 7 and low[:7] == b"rcpt to":
                self.current = CMD_OTHER
            elif n >= 4 and low[:4] == b"rset":
                self.bdat_idx = 0
                self.current = CMD_RSET
            else:
                self.current = CMD_OTHER
            if self._queue(self.current) == -1:
                return -1
            return r
        if self.current == CMD_DATA:
            return self._data(tx, line, eol)
        if self.current == CMD_BDAT:
            self.bdat_idx += len(line) + len(eol)
            if self.bdat_idx > self.bdat_len:
                self.flags &= ~DATA_MODE
                self._ev("bdat_chunk_len_exceeded")
                return -1
            if self.bdat_idx == self.bdat_len:
                self.flags &= ~DATA_MODE
        return 0

    def _bdat_size(self, line: bytes) -> bool:
        """SMTPParseCommandBDAT: the chunk size after "BDAT" and spaces (strtoul); False when
        no space follows "BDAT" or nothing follows the spaces."""
        i = 4
        while i < len(line) and line[i] == 0x20:
            i += 1
        if i == 4 or i == len(line):
            return False
        s = line[i:i + 23]
        j = 0
        while j < len(s) and s[j] in _WS:
            j += 1
        neg = False
        if j < len(s) and s[j] in b"+-":
            neg = s[j] == 0x2D
            j += 1
        k = j
        while k < len(s) and 0x30 <= s[k] <= 0x39:
            k += 1
        # Suricata's "no digits" test compares strtoul's end (in its copy of the line) with
        # the line itself, so it never fails: no digits is a size of 0
        v = min(int(s[j:k]), (1 << 64) - 1) if k > j else 0
        if neg:
            v = (-v) & ((1 << 64) - 1)
        self.bdat_len = v & 0xFFFFFFFF
        return True

    def _data(self, tx: SmtpTx, line: bytes, eol: bytes) -> int:
        """SMTPProcessCommandDATA: a line of the mail."""
        if not self.flags & DATA_MODE:
            return 0
        if line == b".":
            self.flags &= ~DATA_MODE
            self._queue(CMD_DATA_END)
            if tx.mime is not None:
                if tx.mime.complete() != mime.OK:
                    self._ev("mime_parse_failed")
                self._mime_events(tx)
            self._complete()
        if self.current == CMD_DATA and self.flags & DATA_MODE and tx.mime is not None:
            ret = tx.mime.parse_line(line, eol)
            if ret != mime.OK and ret != mime.ERR_STATE:
                self._mime_events(tx)
                self._ev("mime_parse_failed")
        return 0

    def _mime_events(self, tx: SmtpTx) -> None:
        flags = tx.mime.anomalies
        for bit, name in mime.ANOMALY_EVENTS:
            if flags & bit:
                self._ev(name)

    def _complete(self) -> None:
        tx = self._tx()
        if tx is not None:
            tx.complete()

    def _sink(self, tx: SmtpTx):
        """SMTPProcessDataChunk: the decoded chunks of the mail's attachments become files."""
        limit = max(self.s.max_pending, self.s.content_inspect_min_size)

        def sink(entity, chunk: bytes, begin: int, end: int) -> int:
            if not entity.flags & mime.IS_ATTACHMENT:
                return mime.OK
            files = tx.files
            tail = files[-1] if files else None
            if begin:
                f = SmtpFile(entity.filename)
                f.add(chunk, limit)
                files.append(f)
                if end:
                    f.closed = True
            elif end:
                if tail is not None and not tail.closed:
                    tail.add(chunk, limit)
                    tail.closed = True
            else:
                if tail is None or not chunk:
                    return mime.ERR_DATA          # FileAppendData refuses no file or 0 bytes
                if not tail.closed:
                    tail.add(chunk, limit)
            return mime.OK
        return sink

    # -- the server (SMTPParse to client)
    def _server(self, inp: _Input) -> bool:
        while True:
            got, line, eol = self._line(inp, 0)
            if got == _INCOMPLETE:
                return True
            if got == _ERROR:
                inp.consumed = len(inp.buf)
                return True
            if self._reply(inp, line, eol) != 0:
                return False
            if self.upgrade:
                return True
            if not eol and len(line) == LINE_LIMIT:
                if not inp.lf_found:
                    self.discard[0] = True
                self._ev("truncated_line")
                inp.consumed = len(inp.buf)
                return True

    def _reply(self, inp: _Input, line: bytes, eol: bytes) -> int:
        """SMTPProcessReply: 0, or -1 when the parser gives up."""
        n = len(line)
        if n == 0 and inp.consumed == 1 and len(eol) == 1:
            return 0                      # a lone LF opening the data
        if n < 3:
            self._ev("invalid_reply")
            return -1
        if n >= 4:
            if self.flags & MULTILINE:
                if line[3] != 0x2D:
                    self.flags &= ~MULTILINE
            elif line[3] == 0x2D:
                self.flags |= MULTILINE
        else:
            self.flags &= ~MULTILINE
        code = line[:3]
        if code not in REPLY_CODES:
            self._ev("invalid_reply")
            return -1
        cmds = self.cmds
        if self.cmds_idx == len(cmds):
            if not self.flags & FIRST_REPLY_SEEN:
                if not self.flags & MULTILINE:
                    self.flags |= FIRST_REPLY_SEEN
                if code != b"220":
                    self._ev("invalid_reply")
            return 0                      # a reply without command (the banner)
        cmd = cmds[self.cmds_idx]
        if cmd == CMD_STARTTLS:
            if code == b"220":
                self.flags |= DATA_MODE
                self.upgrade = "tls"
                self._complete()
            else:
                self._ev("tls_rejected")
        elif cmd == CMD_DATA:
            if code == b"354":
                self.flags |= DATA_MODE
            else:
                if self.flags & PIPELINING_SERVER:
                    self.flags &= ~DATA_MODE
                self._ev("data_command_rejected")
        elif cmd == CMD_RSET and code == b"250" and not self.flags & MULTILINE:
            self._complete()
        if not self.flags & MULTILINE:
            self.cmds_idx += 1
        elif self.flags & FIRST_REPLY_SEEN and code == b"250" and n == 14 and line[4:14].lower() == b"pipelining":
            self.flags |= PIPELINING_SERVER
        if self.cmds_idx == len(cmds):
            self.cmds.clear()
            self.cmds_idx = 0
        return 0


BUFFERS = [
    # the attachments, decoded; one item per attachment with bytes to inspect on this packet
    BufferDef("file.data", PROTO, True, 0, _file_data, multi=True, body=True),
]
