"""DNS over UDP and TCP: protocol detection, the parser, and the dns.query buffer,
as Suricata 7.0.10 has them.

Checked against Suricata 7.0.10 (its DNS parser and detection code, and crafted
pcaps run through /usr/bin/suricata; tests/unit/test_applayer_dns.py records the
answers):

Messages.  UDP: one message per datagram.  TCP: each message is preceded by a
2-byte big-endian length; a length of 0 is skipped, a message split over
several feeds is held until complete (at most 65535+2 bytes per direction, the
length field's limit), several messages in one feed are all parsed.

Transactions.  Suricata 7 does not pair a response with its request: every
message is its own transaction (`DnsTx`), a request on the to-server side, a
response on the to-client side (its DNS id is used only for logging
configuration).  A response without a request is simply a response
transaction; requests never answered are transactions like any other.  The
parser is stateless: a transaction is complete when it is created, both
progress sides are DONE (Suricata's progress is 1 in both directions), and
Suricata inspects it only in the direction of its message.  Suricata keeps no
bound of its own on open DNS transactions (7.0 has no `dns.flooded` event, and
no `request-flood`/`state-memcap` settings any more): they are freed once
inspected.  ipsbridge keeps at most `Settings.max_txs` (the oldest are dropped),
a bound of its own that only a stage that never collects could reach.

A request (QR clear, to server):
- the header must be valid: 12 bytes, and 12 + 2 * (qd + an + ns + ar) bytes at
  least.  If not: UDP ignores the datagram silently; TCP gives up (the flow's
  app layer is disabled, `failed`).
- QR set on a message to the server: no transaction, event dns.not_request; TCP
  gives up.
- the questions are parsed (answer/authority/additional records of a request
  are not).  A question that does not parse: no transaction, event
  dns.malformed_data; TCP gives up.
- events on the new transaction: dns.z_flag_set (flag 0x0040), dns.invalid_opcode
  (opcode >= 7), dns.name_too_long, dns.infinite_loop, dns.too_many_labels
  (see names below).
A response (to client): the same, except that QR clear only raises
dns.not_response and the transaction is still made (TCP does not give up on it);
questions, answers and authority records are parsed (not the additional
records): an answer's rdata must parse for its type (A/AAAA/NULL/unknown types:
at least one byte; CNAME/PTR/NS: a name; MX: 2 bytes and a name; SRV: 6 bytes
and a name; SOA: two names and 20 bytes; TXT: a first string that fits; SSHFP:
2 bytes), else the response is malformed.

Events that Suricata sets on "the most recent transaction" before making one
(dns.malformed_data, dns.not_request, dns.not_response) are lost when the flow
has no transaction left; as transactions are freed after the packet that made
them, Suricata shows them only after another message of the same packet (TCP:
several messages in one segment).  Here: raised only when this feed already
made a transaction.  Verified: a malformed UDP request raises nothing, a
malformed second message in a TCP segment raises dns.malformed_data.

Names (dns.query): labels joined by '.', no trailing dot, bytes as they are: a
'.' inside a label, NUL, 0xff, spaces and upper case are kept verbatim, no
escaping.  Compression pointers (14-bit offsets from the start of the message,
the 12-byte header included) are followed.  Limits, as Suricata's:
- a pointer beyond the message, a reserved label type (0x40, 0x80), a label or
  pointer cut by the end of its data: the name does not parse;
- the name ends at a zero byte, or at the end of the data (no error by itself;
  the question's type/class are then missing);
- a pointer to itself: when no pointer was followed before, the name does not
  parse; after one, the name ends there (dns.infinite_loop).  Suricata tells it
  by comparing bytes: the message from the target against the name's data from
  the pointer, so in record data (which ends before the message) a pointer to
  itself is followed once, and a pointer to the message's last bytes holding
  the same bytes counts as one;
- labels and pointers count; past 255 of them the name does not parse when no
  pointer was followed, else it ends there (dns.too_many_labels and
  dns.name_too_long).  Other pointer loops end that way;
- past 1025 characters the name is cut to 1025 (dns.name_too_long); parsing
  goes on to find its end when no pointer was followed.  (The label-count test
  comes first: a name whose 256th item is a label is not cut.)
The name of the root (a lone zero byte) is empty: Suricata's dns.query then
gives no buffer, and stops there: the questions after an empty name are not
inspected either (`query_names`).

Detection (Suricata 7.0's DNS keywords: dns.query, its older name dns_query,
and dns.opcode; dns.answer.name, dns.queries.rrname etc. are Suricata 8):
dns.query is a to-server multi-buffer of request transactions only (the
questions of a response are not in it).  dns.opcode (rules.keywords.dns_app)
matches each transaction by its own message's header: requests on to-server
packets, responses on to-client ones.

Protocol detection (`probe`).  Suricata 7 detects DNS only by probing parsers
registered on the server port: `app-layer.protocols.dns.{udp,tcp}.detection-ports`
(dp 53 by default), on both directions of the flow (the server port is the
destination of the first packet); DNS on another port is not detected, and
`alert dns` rules do not match it.  The probe parses the message's header and
questions: a message whose header counts do not fit, or whose questions do not
parse (other than being cut short), is not DNS.  UDP: a datagram under 12 bytes
is not DNS.  TCP: under 14 bytes (length + header) it is not known yet; a
length of 0 is not DNS; when the message is not complete yet only the header
is checked against the length.  Suricata reverses the flow when the probed
message is of the other direction (a response sent to port 53 first): see
`message_to_server`.

UDP: Suricata probes the first datagram of each direction: when the to-server
one is not DNS, the first to-client one (from the server port) can still make
the flow DNS.

`app-layer.protocols.dns.{udp,tcp}.enabled` (yes / no / detection-only) and the
detection ports are `Settings` fields; DNS has no other setting in 7.0.

The IP protocol: DNS over TCP is framed, over UDP not, so `probe(...,
ipproto)` and `Parser(settings, ipproto)` need it (default UDP).

Cost.  A name takes at most 256 steps (Suricata's limit), a message at most a
name per 2 bytes; what follows a name's first pointer is kept per message
(`decode_name`'s memo), so names pointing to the same place are walked once.
Crafted worst cases measured: a 1,500-byte request of names into a pointer loop
0.4 ms, of names with varied prefixes into a loop about 2 ms, 16 KB about 6 ms;
an ordinary request about 5 us.
"""
from __future__ import annotations

from dataclasses import dataclass

from rules.applayer.base import DONE, BufferDef, Tx
from rules.applayer.base import Parser as _Parser

PROTO = "dns"
IPPROTOS = (6, 17)
HEADER_NAMES = ("dns",)
IPPROTO_TCP = 6
IPPROTO_UDP = 17

HEADER_LEN = 12
QR = 0x8000                 # response flag
Z = 0x0040                  # reserved bit
MAX_NAME_LEN = 1025         # longest name kept, as Suricata's (dnsmasq's limit)
MAX_NAME_ITEMS = 255        # labels + pointers followed per name
MAX_TCP_MESSAGE = 2 + 0xFFFF

# name flags
INFINITE_LOOP = 1
TRUNCATED = 2
LABEL_LIMIT = 4
_NAME_EVENTS = ((TRUNCATED, "dns.name_too_long"), (INFINITE_LOOP, "dns.infinite_loop"),
                (LABEL_LIMIT, "dns.too_many_labels"))

# parse outcomes: a name or record that is fine, cut short by the end of its data, or wrong
OK, SHORT, BAD = 0, 1, 2

# rdata types whose parsing differs from "the rest of the data, at least one byte"
T_NS, T_CNAME, T_SOA, T_NULL, T_PTR, T_MX, T_TXT, T_SRV, T_SSHFP = 2, 5, 6, 10, 12, 15, 16, 33, 44


@dataclass(frozen=True, slots=True)
class Settings:
    """`app-layer.protocols.dns`: per IP protocol `enabled` ("yes", "no",
    "detection-only") and `detection-ports` (dp), Suricata 7.0's defaults."""
    udp_enabled: str = "yes"
    tcp_enabled: str = "yes"
    udp_ports: frozenset = frozenset({53})
    tcp_ports: frozenset = frozenset({53})
    max_txs: int = 4096        # ipsbridge's own bound on transactions held per flow


DEFAULTS = Settings()


# ---------------------------------------------------------------- names
def decode_name(msg: bytes, off: int, limit: int, memo: dict | None = None) -> tuple[int, bytes, int, int]:
    """The name at `msg[off:]` whose own bytes end at `limit` (the message's end, or
    its record's data end): (outcome, name, offset after it, flags).  Never raises;
    at most MAX_NAME_ITEMS + 1 steps.  `memo` (one per message) keeps what follows
    each compression pointer, so names pointing to the same place cost one walk."""
    n = len(msg)
    pos = off
    name = bytearray()
    count = 0
    flags = 0
    # the name's own bytes, up to its end or its first pointer
    while pos < limit:
        ln = msg[pos]
        if ln == 0:
            return OK, bytes(name), pos + 1, flags
        kind = ln & 0xC0
        if kind == 0:
            nxt = pos + 1 + ln
            if nxt > limit:
                return SHORT, b"", pos, 0
            if not flags & TRUNCATED:
                if name:
                    name += b"."
                name += msg[pos + 1:nxt]
            pos = nxt
        elif kind == 0xC0:
            if pos + 2 > limit:
                return SHORT, b"", pos, 0
            target = ((ln & 0x3F) << 8) | msg[pos + 1]
            if target > n:
                return BAD, b"", pos, 0
            # a pointer to itself, as Suricata tells it: the message from the target holds
            # the same bytes as this name's data from here (in record data, which ends
            # before the message does, that can be another place)
            if n - target == limit - pos and (target == pos or msg[target:] == msg[pos:limit]):
                return BAD, b"", pos, 0
            key = (target, count, len(name), flags)
            got = memo.get(key) if memo is not None else None
            if got is None:
                got = _follow(msg, target, count, len(name), flags)
                if memo is not None:
                    memo[key] = got
            if got[0]:
                return got[0], b"", pos, 0
            return OK, bytes(name) + got[1], pos + 2, flags | got[2]
        else:
            return BAD, b"", pos, 0
        count += 1
        if count > MAX_NAME_ITEMS:
            return BAD, b"", pos, 0
        if len(name) > MAX_NAME_LEN:
            del name[MAX_NAME_LEN:]
            flags |= TRUNCATED          # no pointer yet: go on to find the name's end
    return OK, bytes(name), pos, flags


def _follow(msg: bytes, pos: int, count: int, length: int, flags: int) -> tuple[int, bytes, int]:
    """The rest of a name after its first pointer (to `pos`), `count` items and `length`
    characters before it: (outcome, what it appends, flags).  From here a pointer to
    itself or the item limit ends the name, and so does the length limit."""
    n = len(msg)
    out = bytearray()
    count += 1                          # the pointer that led here
    if count > MAX_NAME_ITEMS:
        return OK, b"", flags | LABEL_LIMIT | TRUNCATED
    while pos < n:
        ln = msg[pos]
        if ln == 0:
            break
        kind = ln & 0xC0
        if kind == 0:
            nxt = pos + 1 + ln
            if nxt > n:
                return SHORT, b"", 0
            if not flags & TRUNCATED:
                if length or out:
                    out += b"."
                out += msg[pos + 1:nxt]
            pos = nxt
        elif kind == 0xC0:
            if pos + 2 > n:
                return SHORT, b"", 0
            target = ((ln & 0x3F) << 8) | msg[pos + 1]
            if target > n:
                return BAD, b"", 0
            if target == pos:
                flags |= INFINITE_LOOP
                break
            pos = target
        else:
            return BAD, b"", 0
        count += 1
        if count > MAX_NAME_ITEMS:
            flags |= LABEL_LIMIT | TRUNCATED
            break
        if length + len(out) > MAX_NAME_LEN:
            del out[max(MAX_NAME_LEN - length, 0):]
            flags |= TRUNCATED
            break
    return OK, bytes(out), flags


def _questions(msg: bytes, off: int, qd: int, memo: dict) -> tuple[int, list, int, int]:
    """The `qd` questions from `off`: (outcome, [(name, qtype, qclass)], offset after, flags)."""
    n = len(msg)
    out = []
    flags = 0
    for _ in range(qd):
        got, name, off, f = decode_name(msg, off, n, memo)
        if got:
            return got, out, off, flags
        flags |= f
        if off + 4 > n:
            return SHORT, out, off, flags
        out.append((name, (msg[off] << 8) | msg[off + 1], (msg[off + 2] << 8) | msg[off + 3]))
        off += 4
    return OK, out, off, flags


def _rdata(msg: bytes, rtype: int, a: int, b: int, memo: dict) -> tuple[int, int]:
    """Does the record data msg[a:b] parse for its type, as Suricata's (at least one
    item, which must consume something)?  (outcome OK or BAD, name flags)."""
    if rtype in (T_CNAME, T_PTR, T_NS, T_MX, T_SRV, T_SOA):
        skip = {T_MX: 2, T_SRV: 6}.get(rtype, 0)
        pos = a + skip
        if pos > b:
            return BAD, 0
        got, _name, pos, flags = decode_name(msg, pos, b, memo)
        if got:
            return BAD, 0
        if rtype == T_SOA:
            got, _name, pos, f2 = decode_name(msg, pos, b, memo)
            if got or pos + 20 > b:
                return BAD, 0
            flags |= f2
            pos += 20
        return (OK, flags) if pos > a else (BAD, 0)
    if rtype == T_TXT:
        return (OK, 0) if a < b and a + 1 + msg[a] <= b else (BAD, 0)
    if rtype == T_SSHFP:
        return (OK, 0) if b - a >= 2 else (BAD, 0)
    return (OK, 0) if b > a else (BAD, 0)          # A, AAAA, NULL and the rest: the bytes


def _records(msg: bytes, off: int, count: int, memo: dict) -> tuple[int, int, int]:
    """`count` resource records from `off`: (outcome, offset after, flags)."""
    n = len(msg)
    flags = 0
    for _ in range(count):
        got, _name, off, f = decode_name(msg, off, n, memo)
        if got:
            return got, off, flags
        if off + 10 > n:
            return SHORT, off, flags
        rtype = (msg[off] << 8) | msg[off + 1]
        rdlen = (msg[off + 8] << 8) | msg[off + 9]
        off += 10
        if off + rdlen > n:
            return SHORT, off, flags
        got, f2 = _rdata(msg, rtype, off, off + rdlen, memo)
        if got:
            return got, off, flags
        flags |= f | f2
        off += rdlen
    return OK, off, flags


def _header(msg: bytes) -> tuple[int, int, int, int, int, int] | None:
    """(id, flags, qd, an, ns, ar) of a message whose header counts fit its length, else None."""
    if len(msg) < HEADER_LEN:
        return None
    h = tuple((msg[i] << 8) | msg[i + 1] for i in range(0, HEADER_LEN, 2))
    if HEADER_LEN + 2 * (h[2] + h[3] + h[4] + h[5]) > len(msg):
        return None
    return h


def dns_names(msg: bytes) -> list[bytes]:
    """The question names dns.query inspects in a DNS request message (UDP payload):
    empty when it is not a request that parses."""
    h = _header(msg)
    if h is None or h[1] & QR:
        return []
    got, qs, _off, _flags = _questions(msg, HEADER_LEN, h[2], {})
    return [] if got else query_names(q[0] for q in qs)


def query_names(names) -> list[bytes]:
    """The names dns.query gives: in order, up to the first empty one (Suricata's
    multi-buffer ends at a question whose name is empty)."""
    out = []
    for nm in names:
        if not nm:
            break
        out.append(nm)
    return out


# ---------------------------------------------------------------- detection
def _probe_message(msg: bytes, dlen: int) -> bool:
    """Is msg (the first `dlen`-byte message, maybe not all of it here) DNS?"""
    msg = msg[:dlen]
    if len(msg) < HEADER_LEN:
        return False
    h = tuple((msg[i] << 8) | msg[i + 1] for i in range(0, HEADER_LEN, 2))
    fits = HEADER_LEN + 2 * (h[2] + h[3] + h[4] + h[5]) <= dlen
    if len(msg) < dlen:
        return fits
    got, _qs, _off, _flags = _questions(msg, HEADER_LEN, h[2], {})
    return fits and got != BAD


def probe(data: bytes, to_server: bool, sport: int, dport: int, ipproto: int = IPPROTO_UDP,
          settings: Settings | None = None) -> bool | None:
    """The first datagram (UDP) or stream bytes (TCP) of a direction: DNS or not
    (None: TCP, not enough bytes yet).  `sport`/`dport` are the packet's: the
    server's port (dport to the server, sport from it) must be a detection port."""
    s = settings or DEFAULTS
    tcp = ipproto == IPPROTO_TCP
    if (s.tcp_enabled if tcp else s.udp_enabled) == "no":
        return False
    if (dport if to_server else sport) not in (s.tcp_ports if tcp else s.udp_ports):
        return False
    data = bytes(data)
    if not tcp:
        return len(data) >= HEADER_LEN and _probe_message(data, len(data))
    if len(data) < 2 + HEADER_LEN:
        return None
    dlen = (data[0] << 8) | data[1]
    if _probe_message(data[2:], dlen):
        return True
    return False if len(data) > 2 + HEADER_LEN else None


def message_to_server(data: bytes, ipproto: int = IPPROTO_UDP) -> bool | None:
    """Which side the first message of `data` belongs to by its QR flag (True: a
    request), None when too short.  Suricata reverses a flow whose first detected
    DNS message is of the other direction (a response sent to port 53 first: the
    flow is swapped, the message is parsed as a response)."""
    at = 2 if ipproto == IPPROTO_TCP else 0
    if len(data) < at + 4:
        return None
    return not data[at + 2] & 0x80


# ---------------------------------------------------------------- parser
class DnsTx(Tx):
    """One DNS message: a request (to_server) or a response."""

    __slots__ = ("flags", "msg_id", "questions", "to_server")

    def __init__(self, tx_id: int, to_server: bool, msg_id: int, flags: int, questions: list) -> None:
        super().__init__(tx_id)
        self.progress = [DONE, DONE]     # stateless: complete as soon as it exists
        self.only = to_server            # inspected in its message's direction only
        self.to_server = to_server
        self.msg_id = msg_id
        self.flags = flags
        self.questions = questions       # [(name, qtype, qclass)]

    @property
    def opcode(self) -> int:
        return (self.flags >> 11) & 0xF


class Parser(_Parser):
    proto = PROTO

    def __init__(self, settings: Settings | None = None, ipproto: int = IPPROTO_UDP) -> None:
        super().__init__()
        self.settings = settings or DEFAULTS
        self.tcp = ipproto == IPPROTO_TCP
        self.held = [bytearray(), bytearray()]   # TCP: an incomplete message per direction
        self.next_id = 0
        self._made = False                       # this feed made a transaction

    def feed(self, data: bytes, to_server: bool) -> None:
        if self.failed or ((self.settings.tcp_enabled if self.tcp else self.settings.udp_enabled) != "yes"):
            return
        self._made = False
        if not self.tcp:
            self._message(bytes(data), to_server)
            return
        buf = self.held[to_server]
        buf += data
        at = 0
        n = len(buf)
        while n - at >= 2:
            size = (buf[at] << 8) | buf[at + 1]
            if size == 0:
                at += 2
                continue
            if n - at < 2 + size:
                break
            if not self._message(bytes(buf[at + 2:at + 2 + size]), to_server):
                self.failed = True
                self.held = [bytearray(), bytearray()]
                return
            at += 2 + size
        del buf[:at]

    def end(self, to_server: bool) -> None:
        self.held[to_server].clear()

    def _late_event(self, name: str) -> None:
        # set on the most recent transaction in Suricata: seen only if this feed made one
        if self._made:
            self.event(name)

    def _message(self, msg: bytes, to_server: bool) -> bool:
        """Parse one message; False when TCP would give up on the flow."""
        h = _header(msg)
        if h is None:
            return False
        msg_id, flags, qd, an, ns, _ar = h
        memo: dict = {}
        got, qs, off, nflags = _questions(msg, HEADER_LEN, qd, memo)
        if not got and not to_server:
            got, off, f = _records(msg, off, an, memo)
            nflags |= f
            if not got:
                got, off, f = _records(msg, off, ns, memo)
                nflags |= f
        if got:
            self._late_event("dns.malformed_data")
            return False
        if to_server and flags & QR:            # checked once the message parsed
            self._late_event("dns.not_request")
            return False
        if not to_server and not flags & QR:
            self._late_event("dns.not_response")
        self.next_id += 1
        self.txs.append(DnsTx(self.next_id, to_server, msg_id, flags, qs))
        if len(self.txs) > self.settings.max_txs:
            del self.txs[0]
        self._made = True
        if flags & Z:
            self.event("dns.z_flag_set")
        if (flags >> 11) & 0xF >= 7:
            self.event("dns.invalid_opcode")
        for bit, name in _NAME_EVENTS:
            if nflags & bit:
                self.event(name)
        return True


# ---------------------------------------------------------------- buffers
def _query(tx) -> list | None:
    if not tx.to_server:
        return None
    return query_names(q[0] for q in tx.questions) or None


BUFFERS = [
    BufferDef("dns.query", PROTO, True, DONE, _query, multi=True),
]
ALIASES = {"dns_query": "dns.query"}
