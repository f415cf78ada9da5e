"""What every app-layer parser shares: the transaction, the parser interface and the
buffer table entry.

A parser is sans-I/O and per flow: the app-layer stage (rules.applayer) hands it
each direction's reassembled, in-order stream bytes as they arrive (`feed`), or a
whole datagram for UDP, and tells it when a direction ends (`end`).  It keeps a
list of transactions (`txs`, oldest first); each transaction says how far each of
its directions got (`progress[to_server]`, an int whose meaning the protocol
defines, `DONE` when that direction of the transaction is complete).  A parser
never raises: malformed data is parsed as far as it goes, raises the protocol's
app-layer events (`events`, Suricata's names, e.g. "http.request_header_invalid")
and, when nothing more can be understood, the parser gives up (`failed`).  It is
bounded: header sizes, body sizes and transaction counts have limits from the
configuration (`app-layer.protocols.<proto>` keys), past which data is skipped
and an event raised.

Detection reads transactions through buffers: `BufferDef(name, proto,
to_server, progress, get)` -- `get(tx)` returns the buffer's bytes, a list of
bytes for a multi-buffer (dns.query: one per question), or None when the
transaction does not have it; the buffer can be inspected once the transaction's
`progress[to_server]` reaches `progress`.  Every buffer a keyword can select is
registered in rules.applayer.buffers.BUFFERS.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

DONE = 1 << 20           # progress of a direction that is complete
# a body buffer's getter -> the same body as it stands, without a copy (bytes, or the
# bytearray it grows in): what the prefilter reads of a growing body is only the bytes it
# grew by (rules.detect_tx._Slot); matching still gets the getter's bytes
GROWN: dict[Callable, Callable] = {}


class Tx:
    """One transaction: a request and its response (HTTP), a handshake (TLS), a query
    and its answer (DNS).  Protocols subclass it with their fields.

    `progress[1]` is the request (to server) side, `progress[0]` the response side.
    `inspected` is detection's own state: per direction, the signatures already
    decided for this transaction (matched or no longer able to match), so a rule
    fires once per transaction as in Suricata."""

    __slots__ = ("id", "progress", "inspected", "body_grew", "found", "only", "final")

    def __init__(self, tx_id: int) -> None:
        self.id = tx_id
        self.progress = [0, 0]
        self.inspected: tuple[set, set] = (set(), set())
        self.body_grew = [False, False]     # set by parsers when a body buffer grew on this feed
        self.found: dict = {}               # detection's prefilter results per buffer (rules.detect_tx)
        self.only: bool | None = None       # inspected in this direction only (a DNS message's own), None both
        self.final = [False, False]         # detection ran on it complete, per direction (then it can go)

    def done(self) -> bool:
        return self.progress[0] >= DONE and self.progress[1] >= DONE

    def spent(self) -> bool:
        """Complete, and detection ran on it since, in each direction it is inspected in:
        the stage may free it."""
        if not (self.progress[0] >= DONE and self.progress[1] >= DONE):
            return False
        only = self.only
        return self.final[only] if only is not None else self.final[0] and self.final[1]


class Parser:
    """The interface of a protocol parser (one per flow)."""

    # (slots: the compiled lanes read these fields on every segment, by offset; a protocol's
    # own fields go to __dict__, or to slots of its own)
    __slots__ = ("txs", "events", "failed", "no_inspect_payload", "bypass_ready", "gen", "tx_idle", "__dict__")
    proto = ""

    def __init__(self) -> None:
        self.txs: list[Tx] = []
        self.events: list[str] = []       # raised since the stage last took them
        self.failed = False               # gave up: the rest of the flow is not parsed
        # the flow is encrypted from here (TLS after its handshake, encryption-handling
        # default/bypass): later packets get no payload inspection; `bypass_ready` the flow
        # may leave the frame path (encryption-handling bypass)
        self.no_inspect_payload = False
        self.bypass_ready = False
        # what transaction detection sees changes only when this number does (None: the
        # parser does not say, detection runs on every packet it was fed on): after a run
        # that left no rule waiting on the packet itself, TxDetector.run skips the packets
        # until it moves (an HTTP body growing below its minimal inspect size, or past its
        # limit, moves nothing)
        self.gen: int | None = None
        # detection's: per direction, (gen, flowbits or None) of its last idle run, else None
        self.tx_idle: list = [None, None]

    def feed(self, data: bytes, to_server: bool) -> None:
        """In-order bytes of one direction (TCP), or one datagram (UDP).  Never raises."""
        raise NotImplementedError

    def take(self, data: bytes, to_server: bool) -> bool:
        """A shortcut of `feed` for data a parser can take without its general walk (an HTTP
        body's content): True when it took `data` exactly as `feed` would have, False when
        it did nothing (then `feed` takes it).  None here."""
        return False

    def end(self, to_server: bool) -> None:
        """That direction of the stream ended (FIN/RST, flow end): an unterminated body or
        message is complete as it is."""

    def event(self, name: str) -> None:
        if len(self.events) < 64:
            self.events.append(name)


@dataclass(frozen=True, slots=True)
class BufferDef:
    name: str                 # the sticky buffer keyword: "http.uri"
    proto: str                # "http", "tls", "dns", ...
    to_server: bool           # which side of the transaction holds it
    progress: int             # the side's progress from which the buffer can be inspected
    get: Callable             # tx -> bytes | list[bytes] | None
    multi: bool = False       # get returns a list: the rule matches when any item matches
    body: bool = False        # grows as the body arrives: inspected again while it grows, until the side is DONE
