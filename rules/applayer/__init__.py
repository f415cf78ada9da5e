"""The app-layer stage: which protocol a flow speaks, and its parser.

    app = AppLayer(protos, settings)          # the protocols some rule needs
    state = app.feed_tcp(flow, to_server, data)   # in-order stream bytes (rules.stream)
    state = app.feed_udp(flow, to_server, payload)

Protocol detection is by content, not port, on both directions, as Suricata's:
the first bytes of each direction are offered to each protocol's `probe`
(rules.applayer.registry) until one says yes; the flow is then that protocol
for good and its parser gets everything from the start of both directions
(the bytes held while detecting included).  When every protocol says no in a
direction that has data, or a direction held DETECT_LIMIT bytes without an
answer, detection failed for the flow: it gets no parser.  Only the protocols
some loaded rule needs are probed, so a rule set without app-layer rules costs
nothing here.

`app-layer.protocols.<proto>.enabled` (conf/): `settings["enabled"]` maps
(protocol, IP protocol) to "no" or "detection-only" (a pair not there is
"yes").  "no": the protocol is never probed over that IP protocol, so flows of
it are never detected as it and its rules never match (Suricata refuses such
rules at load; conf.build notes them).  "detection-only": the flow is detected
(a rule header `alert http` with plain content applies) but gets no parser, so
it has no transactions and its app-layer buffers are never inspected -- as
Suricata, whose parser for the protocol is then not registered.

The parsers hold the transactions detection reads (rules.applayer.base).  A
transaction whose both sides are complete is removed once detection has run on
the packet that completed it (`collect`).  Counters: app.<proto>.flows,
app.detect_failed, app events as app.event.<name>.

The events a feed raised also go to the transactions it made or moved on (their progress
changed; none moved: the last one), as Suricata keeps an app-layer event on the transaction
being parsed: `tx.found[TX_EVENTS]`, a set of names, read by app-layer-event
(rules.keywords.app_events).
"""
from __future__ import annotations

from rules.applayer import registry

DETECT_LIMIT = 2048       # bytes held per direction while no protocol answers
TX_EVENTS = "app-layer-event"   # key of Tx.found holding the transaction's events (see above)
ENABLED = "enabled"       # the key of EngineSettings.app holding the enabled modes (see above)
ENABLED_MODES = ("yes", "no", "detection-only")


class AppState:
    """A flow's app layer: its protocol ("" while unknown, "failed"), the parser, and
    the bytes held per direction while detecting."""

    __slots__ = ("proto", "parser", "held", "refused", "fed", "error_seen", "failed_at", "marks")

    def __init__(self) -> None:
        self.proto = ""
        self.parser = None
        self.held = [b"", b""]           # [to client, to server]
        self.refused: list[set] = [set(), set()]   # protocols whose probe said no, per direction
        self.fed = False                 # the parser got data on the current packet
        self.error_seen = False          # the parser's giving up was acted on (app-layer.error-policy)
        self.failed_at = 0               # the flow's packet count when detection failed
        self.marks: dict = {}            # tx id -> its progress after the last feed (which txs a feed moved)


class AppLayer:
    def __init__(self, protos, settings: dict | None = None) -> None:
        self.settings = settings or {}
        modes = self.settings.get(ENABLED, {})
        mods = tuple(registry.PROTOCOLS[p] for p in sorted(protos))
        # per IP protocol, the modules probed there: not those whose enabled is "no"
        self.probed = {ip: tuple(m for m in mods if ip in m.IPPROTOS and modes.get((m.PROTO, ip)) != "no")
                       for ip in (6, 17)}
        # their names: a direction whose refused set holds them all probes no more
        self.probed_names = {ip: frozenset(m.PROTO for m in ms) for ip, ms in self.probed.items()}
        self.detection_only = frozenset(k for k, v in modes.items() if v == "detection-only")
        self.c: dict[str, int] = {}

    def _count(self, key: str, n: int = 1) -> None:
        self.c[key] = self.c.get(key, 0) + n

    def state(self, flow) -> AppState:
        st = flow.app
        if st is None:
            st = flow.app = AppState()
        return st

    @staticmethod
    def _ports(flow, to_server: bool) -> tuple[int, int]:
        """(source, destination) port of the direction's packets."""
        return (flow.cli_port, flow.srv_port) if to_server else (flow.srv_port, flow.cli_port)

    def feed_tcp(self, flow, to_server: bool, data: bytes) -> AppState | None:
        """In-order bytes of one direction of a TCP flow."""
        st = flow.app
        if st is None:
            st = flow.app = AppState()
        if st.parser is not None:
            st.parser.feed(data, to_server)
            st.fed = True
            self._events(st)
            return st
        if st.proto or not data:             # failed, or detection-only (no parser)
            return st
        held = st.held[to_server] + data
        sport, dport = self._ports(flow, to_server)
        found = self._probe(st, held, to_server, sport, dport, 6)
        if found is None:
            if len(held) > DETECT_LIMIT:
                self._failed(st, flow)
                st.held = [b"", b""]
                self._count("app.detect_failed")
                return st
            st.held[to_server] = held
            return st
        if found == "":
            self._failed(st, flow)
            st.held = [b"", b""]
            self._count("app.detect_failed")
            return st
        st.held[to_server] = held
        self._start(st, found, 6)
        # everything held so far, the other direction's first (it came earlier)
        other = st.held[not to_server]
        st.held = [b"", b""]
        if st.parser is None:                # detection-only
            return st
        if other:
            st.parser.feed(other, not to_server)
        st.parser.feed(held, to_server)
        st.fed = True
        self._events(st)
        return st

    def feed_udp(self, flow, to_server: bool, payload: bytes) -> AppState | None:
        """One datagram of a UDP flow: detected on the first datagram of each direction."""
        st = flow.app
        if st is None:
            st = flow.app = AppState()
        if st.parser is None:
            if st.proto:                     # failed, or detection-only (no parser)
                return st
            # Suricata probes the first datagram of each direction: junk to port 53 and then
            # a real answer is still DNS; the flow fails once both directions were refused
            names = self.probed_names[17]
            mine = st.refused[to_server]
            if mine >= names:                # this direction refused them all: the other may still say
                return st
            sport, dport = self._ports(flow, to_server)
            found = self._probe(st, payload, to_server, sport, dport, 17)
            if not found:
                mine.update(names)
                if st.refused[not to_server] >= names:
                    self._failed(st, flow)
                    self._count("app.detect_failed")
                return st
            self._start(st, found, 17)
            # the scan offers made while the flow had no protocol (rules.engine._offer_scan:
            # no transaction then) hold no more
            flow.prefilter = None
            if st.parser is None:            # detection-only
                return st
        st.parser.feed(payload, to_server)
        st.fed = True
        self._events(st)
        return st

    def udp_quiet(self, flow, to_server: bool) -> bool:
        """Does a datagram of this direction of a UDP flow change nothing here, and can no
        transaction come of it, as long as the flow's protocol stays what it is?  True when
        the flow has no parser and either has a protocol (failed, or detection-only) or this
        direction refused every protocol probed (only the other direction may still find
        one: `feed_udp` then clears the flow's scan offers)."""
        st = flow.app
        return st is not None and st.parser is None and bool(
            st.proto or st.refused[to_server] >= self.probed_names[17])

    def take_tcp(self, st: AppState, to_server: bool, data: bytes) -> bool:
        """`feed_tcp`'s shortcut for a flow with a parser, when the parser can take `data`
        without its general walk (Parser.take): True when taken as `feed_tcp` would;
        False, nothing done (`feed_tcp` takes it)."""
        p = st.parser
        if p is None or not p.take(data, to_server):
            return False
        st.fed = True
        self._events(st)
        return True

    def end(self, flow, to_server: bool) -> None:
        """A direction of the flow ended (FIN, RST, flow end)."""
        st = flow.app
        if st is not None and st.parser is not None:
            st.parser.end(to_server)
            st.fed = True

    def collect(self, st: AppState, detected: bool = True) -> None:
        """After detection on the packet: transactions detection is done with go (complete,
        and inspected since in each of their directions, `Tx.spent`); `detected` False (no
        rule inspects this protocol's transactions): every complete one goes."""
        st.fed = False
        p = st.parser
        if p is not None and p.txs:
            if detected:
                if any(tx.spent() for tx in p.txs):
                    p.txs = [tx for tx in p.txs if not tx.spent()]
            elif p.txs[0].done():
                p.txs = [tx for tx in p.txs if not tx.done()]

    def _probe(self, st: AppState, data: bytes, to_server: bool, sport: int, dport: int, ipproto: int):
        """The protocol `data` starts, None (not enough data yet), or "" (none of them)."""
        undecided = False
        refused = st.refused[to_server]
        probed = self.probed[ipproto]
        for m in probed:
            if m.PROTO in refused:
                continue
            got = m.probe(data, to_server, sport, dport, ipproto, self.settings.get(m.PROTO))
            if got:
                return m.PROTO
            if got is None:
                undecided = True
            else:
                refused.add(m.PROTO)
        if undecided:
            return None
        # every protocol refused this direction: detection fails only when the other
        # direction cannot decide either (it has refused everything too, or it is the one
        # that spoke first and was refused)
        other = st.refused[not to_server]
        if all(m.PROTO in other for m in probed):
            return ""
        return None if len(data) <= DETECT_LIMIT else ""

    @staticmethod
    def _failed(st: AppState, flow) -> None:
        """Detection failed for the flow (on the packet being inspected: app-layer-protocol
        sees `failed` from the flow's next packet on, as in Suricata)."""
        st.proto = "failed"
        st.failed_at = flow.pkts_toserver + flow.pkts_toclient

    def _start(self, st: AppState, proto: str, ipproto: int) -> None:
        mod = registry.PROTOCOLS[proto]
        st.proto = proto
        self._count(f"app.{proto}.flows")
        if (proto, ipproto) in self.detection_only:
            return
        # told the IP protocol: over TCP and UDP (DNS) the framing differs
        st.parser = mod.Parser(self.settings.get(proto), ipproto)

    def _events(self, st: AppState) -> None:
        p = st.parser
        moved = []
        marks = {}
        for tx in p.txs:
            mark = marks[tx.id] = (tx.progress[0], tx.progress[1])
            if st.marks.get(tx.id) != mark:
                moved.append(tx)
        st.marks = marks
        ev = p.events
        if ev:
            for name in ev:
                self._count(f"app.event.{name}")
            for tx in moved or p.txs[-1:]:
                tx.found.setdefault(TX_EVENTS, set()).update(ev)
            ev.clear()

    def stats(self) -> dict[str, int]:
        return dict(self.c)
