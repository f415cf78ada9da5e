"""FTP (the control connection): protocol detection and the parser, as Suricata 7.0.10
has them (src/app-layer-ftp.c, rust/src/ftp/mod.rs; checked with crafted pcaps through
/usr/bin/suricata, tests/replay/app_ftp.py).

ET Open's `alert ftp` rules are content/pcre on the stream: what they need is the flow
detected as FTP, and the parser's verdicts that Suricata acts on (a parser error drops
the flow in IPS mode, app-layer.error-policy).  Suricata 7.0 has no FTP sticky buffer;
`ftpbounce` and the ftp-data protocol (files on the data connections) are not here.

Detection (`probe`): Suricata registers patterns only, no probing parser and no
ports: from the client "USER ", "PASS ", "PORT " or "FEAT", from the server "220 ("
(vsftpd's banner), each at the start of the direction, case-insensitive.  A banner
without "(" ("220 ProFTPD") is not FTP; the flow is then detected from the client's
first command.

Lines.  Each direction is split at LF (a CR before it is dropped); a line of
`max_line_len` bytes or more is cut to that length (event
ftp.request_command_too_long / ftp.response_command_too_long) and the rest of that
input is skipped.  Suricata's quirks are kept, as they decide which lines are parsed:
a line that reaches the limit without LF is taken from the start of the data given in
that call, and a line that reaches it with its LF, when its command is not known,
makes the next line and the rest of the data be skipped.

Commands.  A request line's command is the known command (FtpCommands: PORT, EPRT,
"AUTH TLS", PASV, RETR, EPSV, STOR, USER, PASS, ...) found anywhere in the line,
case-insensitive, the one whose match ends first ("XPWD" is PWD, "REPORT" is PORT).
A line without one makes no transaction; a line with one opens a transaction (at most
`max_tx` open: past that the parser gives up).  RETR and STOR need a data port
negotiated before (a PORT/EPRT accepted or a PASV/EPSV answer parsed) and a file name:
without them the parser gives up (Suricata's APP_LAYER_ERROR: in IPS mode the flow is
dropped).  Replies go to the oldest open transaction (else the last one, or a new one
for a reply without any, the banner); a "1xx " reply keeps it open, any other line
completes it.  After "AUTH TLS" answered "234 " Suricata hands the flow to TLS: this
parser then ignores the connection (`upgrade` is "tls").  The stage has no protocol
change, so the flow stays ftp: when a real TLS handshake follows, Suricata's flow is tls
and its `alert ftp` rules stop while ipsbridge's go on.
"""
from __future__ import annotations

from dataclasses import dataclass

from rules.applayer.base import DONE, Tx
from rules.applayer.base import Parser as _Parser

PROTO = "ftp"
IPPROTOS = (6,)
HEADER_NAMES = ("ftp",)
BUFFERS: list = []
ALIASES: dict = {}

# detection patterns (offset 0, case-insensitive), per direction
CLIENT_PATTERNS = (b"USER ", b"PASS ", b"PORT ", b"FEAT")
SERVER_PATTERNS = (b"220 (",)

# FtpCommands, in Suricata's order (its index is the command id)
COMMANDS = (b"PORT", b"EPRT", b"AUTH TLS", b"PASV", b"RETR", b"EPSV", b"STOR", b"ABOR", b"ACCT", b"ALLO",
            b"APPE", b"CDUP", b"CHMOD", b"CWD", b"DELE", b"HELP", b"IDLE", b"LIST", b"MAIL", b"MDTM", b"MKD",
            b"MLFL", b"MODE", b"MRCP", b"MRSQ", b"MSAM", b"MSND", b"MSOM", b"NLST", b"NOOP", b"PASS", b"PWD",
            b"QUIT", b"REIN", b"REST", b"RMD", b"RNFR", b"RNTO", b"SITE", b"SIZE", b"SMNT", b"STAT", b"STOU",
            b"STRU", b"SYST", b"TYPE", b"UMASK", b"USER")
UNKNOWN = b""
_WS = b" \t\r\n\v\f"                   # C isspace
_DIGITS = frozenset(b"0123456789")

# the read results of a line
_OK, _INCOMPLETE, _ERROR = 0, 1, 2


@dataclass(frozen=True, slots=True)
class Settings:
    """`app-layer.protocols.ftp` (Suricata 7.0's defaults)."""
    max_tx: int = 1024           # max-tx: open transactions (commands not answered)
    max_line_len: int = 4096     # max-line-length


DEFAULTS = Settings()


# ---------------------------------------------------------------- detection
def _starts(data: bytes, patterns: tuple) -> bool | None:
    head = bytes(data[:8]).upper()
    short = False
    for p in patterns:
        if head.startswith(p):
            return True
        if len(head) < len(p) and p.startswith(head):
            short = True
    return None if short else False


def probe(data: bytes, to_server: bool, sport: int, dport: int, ipproto: int = 6,
          settings: Settings | None = None) -> bool | None:
    """FTP from the client's first command or vsftpd's banner ("220 ("); None while the
    first bytes are a prefix of a pattern."""
    if not data:
        return None
    return _starts(data, CLIENT_PATTERNS if to_server else SERVER_PATTERNS)


# ---------------------------------------------------------------- argument parsers
def _digits(s: bytes, i: int) -> int:
    j = i
    while j < len(s) and s[j] in _DIGITS:
        j += 1
    return j


def _u16(s: bytes, i: int, spaces: bool) -> tuple[int, int] | None:
    """A decimal u16 at s[i:] (with `spaces`, surrounded by optional whitespace): (value, end)."""
    if spaces:
        while i < len(s) and s[i] in _WS:
            i += 1
    j = _digits(s, i)
    if j == i:
        return None
    v = int(s[i:j])
    if v > 0xFFFF:
        return None
    if spaces:
        while j < len(s) and s[j] in _WS:
            j += 1
    return v, j


def active_port(line: bytes) -> int:
    """The data port of a "PORT h1,h2,h3,h4,p1,p2" line (rs_ftp_active_port), 0 if none."""
    if not line.startswith(b"PORT"):
        return 0
    i = 4
    while i < len(line) and line[i] in _WS:
        i += 1
    j = _digits(line, i)
    if j == i:
        return 0
    i = j
    while i < len(line) and line[i] in _WS:
        i += 1
    for _ in range(3):
        if line[i:i + 1] != b",":
            return 0
        j = _digits(line, i + 1)
        if j == i + 1:
            return 0
        i = j
    if line[i:i + 1] != b",":
        return 0
    p1 = _u16(line, i + 1, False)
    if p1 is None or p1[0] > 255 or line[p1[1]:p1[1] + 1] != b",":
        return 0
    p2 = _u16(line, p1[1] + 1, False)
    if p2 is None or p2[0] > 255:
        return 0
    return p1[0] * 256 + p2[0]


def active_eprt(line: bytes) -> int:
    """The port of an "EPRT |af|addr|port|" line (rs_ftp_active_eprt), 0 if none."""
    if not line.startswith(b"EPRT"):
        return 0
    i = 4
    for _ in range(3):
        j = line.find(b"|", i)
        if j < 0:
            return 0
        i = j + 1
    got = _u16(line, i, True)
    if got is None or line[got[1]:got[1] + 1] != b"|":
        return 0
    return got[0]


def pasv_port(line: bytes) -> int:
    """The port of a "227 ... (h1,h2,h3,h4,p1,p2)" reply (rs_ftp_pasv_response), 0 if none."""
    if not line.startswith(b"227"):
        return 0
    i = line.find(b"(", 3)
    if i < 0:
        return 0
    i += 1
    for _ in range(4):
        j = _digits(line, i)
        if j == i or line[j:j + 1] != b",":
            return 0
        i = j + 1
    p1 = _u16(line, i, True)
    if p1 is None or p1[0] > 255 or line[p1[1]:p1[1] + 1] != b",":
        return 0
    p2 = _u16(line, p1[1] + 1, True)
    if p2 is None or p2[0] > 255 or line[p2[1]:p2[1] + 1] != b")":
        return 0
    return p1[0] * 256 + p2[0]


def epsv_port(line: bytes) -> int:
    """The port of a "229 ... (|||port|)" reply (rs_ftp_epsv_response), 0 if none."""
    if not line.startswith(b"229"):
        return 0
    i = line.find(b"|||", 3)
    if i < 0:
        return 0
    got = _u16(line, i + 3, True)
    if got is None or line[got[1]:got[1] + 2] != b"|)":
        return 0
    return got[0]


def command_of(line: bytes) -> bytes:
    """The known command in a request line: the one whose first match (case-insensitive,
    anywhere) ends first; UNKNOWN if none."""
    up = line.upper()
    best, best_end = UNKNOWN, len(up) + 1
    for c in COMMANDS:
        i = up.find(c, 0, best_end - 1)
        if i >= 0 and i + len(c) < best_end:
            best, best_end = c, i + len(c)
    return best


def is_preliminary(line: bytes) -> bool:
    """A "1yz " positive preliminary reply: the transaction stays open."""
    return len(line) >= 4 and line[0] == 0x31 and line[1] in _DIGITS and line[2] in _DIGITS and line[3] in _WS


# ---------------------------------------------------------------- the parser
class FtpTx(Tx):
    """A command and its replies (or a reply without command: the banner)."""

    __slots__ = ("command", "dyn_port", "is_done", "replies", "request", "request_truncated")

    def __init__(self, tx_id: int) -> None:
        super().__init__(tx_id)
        self.command = UNKNOWN
        self.request = b""
        self.request_truncated = False
        self.replies: list[bytes] = []
        self.is_done = False
        self.dyn_port = 0

    def complete(self) -> None:
        self.is_done = True
        self.progress = [DONE, DONE]


class _Input:
    """One call's data, as Suricata's FtpInput: what is not consumed stays for the next."""
    __slots__ = ("buf", "consumed", "lf_found")

    def __init__(self, buf: bytes) -> None:
        self.buf = buf
        self.consumed = 0
        self.lf_found = False             # Suricata's line.lf_found: set once, never cleared in a call


class Parser(_Parser):
    proto = PROTO

    def __init__(self, settings: Settings | None = None, ipproto: int = 6) -> None:
        super().__init__()
        self.s = settings or DEFAULTS
        self.held = [b"", b""]            # per direction: data not consumed yet (a partial line)
        self.truncated = [False, False]   # per direction: the current line was cut at max_line_len
        self.command = UNKNOWN            # the last command seen (FtpState.command)
        self.port_line = b""              # the last PORT/EPRT line
        self.dyn_port = 0
        self.active = False
        self.upgrade = ""                 # "tls" once AUTH TLS was accepted: the protocol the flow goes to
        self.tx_cnt = 0

    def feed(self, data: bytes, to_server: bool) -> None:
        if self.failed or self.upgrade or not data:
            return
        inp = _Input(self.held[to_server] + bytes(data))
        self.held[to_server] = b""
        ok = self._requests(inp) if to_server else self._replies(inp)
        if not ok:
            self.failed = True
            self.held = [b"", b""]
            return
        if inp.consumed < len(inp.buf) and not self.truncated[to_server]:
            # (the rest of a cut line is skipped up to its LF and that call's data: Suricata
            # holds it until then, nothing of it is read, so it is not kept)
            self.held[to_server] = inp.buf[inp.consumed:]

    def end(self, to_server: bool) -> None:
        self.held[to_server] = b""

    # -- lines (FTPGetLineForDirection)
    def _line(self, inp: _Input, d: int) -> tuple[int, bytes]:
        buf = inp.buf
        n = len(buf) - inp.consumed
        if n <= 0:
            return _ERROR, b""
        limit = self.s.max_line_len
        lf = buf.find(b"\n", inp.consumed)
        if lf < 0:
            if not self.truncated[d] and n >= limit:
                self.truncated[d] = True
                inp.consumed = len(buf)
                return _OK, buf[:limit]            # from the start of the call's data (sic)
            return _INCOMPLETE, b""
        if self.truncated[d]:
            # the end of a cut line: it and the rest of this call's data are skipped
            self.truncated[d] = False
            inp.consumed = len(buf)
            return _ERROR, b""
        start = inp.consumed
        inp.consumed = lf + 1
        inp.lf_found = True
        if lf + 1 - start >= limit:
            self.truncated[d] = True
            return _OK, buf[start:start + limit]
        end = lf - 1 if lf > start and buf[lf - 1] == 0x0D else lf
        return _OK, buf[start:end]

    def _new_tx(self) -> FtpTx | None:
        if self.txs and self.tx_cnt - self.txs[0].id > self.s.max_tx:
            return None
        tx = FtpTx(self.tx_cnt)
        self.tx_cnt += 1
        self.txs.append(tx)
        return tx

    # -- requests (FTPParseRequest)
    def _requests(self, inp: _Input) -> bool:
        limit = self.s.max_line_len
        while True:
            got, line = self._line(inp, 1)
            if got == _INCOMPLETE:
                return True
            if got == _ERROR:
                inp.consumed = len(inp.buf)
                return True
            cmd = command_of(line)
            if cmd is UNKNOWN:
                self.command = UNKNOWN
                continue
            self.command = cmd
            tx = self._new_tx()
            if tx is None:
                return False
            tx.command = cmd
            tx.request = line.rstrip(_WS)
            tx.request_truncated = self.truncated[1]
            if inp.lf_found:
                self.truncated[1] = False
            if tx.request_truncated:
                self.event("ftp.request_command_too_long")
            if cmd in (b"PORT", b"EPRT"):
                self.port_line = line
            elif cmd in (b"RETR", b"STOR"):
                # the data connection is expected on the negotiated port, with a file name
                if self.dyn_port == 0 or len(line) < 6:
                    return False
                self.dyn_port = 0
                self.active = False
            if len(line) >= limit:
                inp.consumed = len(inp.buf)
                return True

    # -- replies (FTPParseResponse)
    def _oldest_pending(self) -> FtpTx | None:
        last = None
        for tx in self.txs:
            if not tx.is_done:
                return tx
            last = tx
        return last

    def _replies(self, inp: _Input) -> bool:
        limit = self.s.max_line_len
        while True:
            got, line = self._line(inp, 0)
            if got == _INCOMPLETE:
                return True
            if got == _ERROR:
                inp.consumed = len(inp.buf)
                return True
            tx = self._oldest_pending()
            if tx is None:
                tx = self._new_tx()
                if tx is None:
                    return False
            cmd = self.command
            complete_now = False
            if cmd == b"AUTH TLS":
                if line.startswith(b"234 "):
                    self.upgrade = "tls"
            elif cmd in (b"EPRT", b"PORT"):
                port = active_eprt(self.port_line) if cmd == b"EPRT" else active_port(self.port_line)
                if port == 0:
                    complete_now = True
                else:
                    self.dyn_port = tx.dyn_port = port
                    self.active = True
            elif cmd == b"PASV" and line.startswith(b"227 "):
                port = pasv_port(line)
                if port:
                    self.dyn_port = tx.dyn_port = port
                    self.active = False
            elif cmd == b"EPSV" and line.startswith(b"229 "):
                port = epsv_port(line)
                if port:
                    self.dyn_port = tx.dyn_port = port
                    self.active = False
            if not complete_now:
                if line:
                    tx.replies.append(line.rstrip(_WS))
                    if self.truncated[0]:
                        self.event("ftp.response_command_too_long")
                    if inp.lf_found:
                        self.truncated[0] = False
                if is_preliminary(line):
                    continue
            tx.complete()
            if self.upgrade:
                return True
            if len(line) >= limit:
                inp.consumed = len(inp.buf)
                return True
