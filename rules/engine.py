"""The rule engine: an `Inspector` deciding frames with Suricata-language rules.

    engine = Engine(loader.load(paths).rules, EngineSettings(mode="ips"))
    result = engine.inspect(frame, FrameMeta(ts, iface))

A short orchestrator over the stages, each a module of its own:

    decode   rules.decode    frame bytes -> Packets (tunnel layers inside out)
    defrag   rules.defrag    IP fragments -> the rebuilt datagram
    flow     rules.flow      the packet's flow, direction and TCP state
    stream   rules.stream    TCP reassembly -> what payload rules inspect (window / flush)
    detect   rules.detect    candidates (prefilter) and matching -> signatures
    verdict  rules.verdict   matches + mode -> packet verdict, flow mark, alerts
    reject   rules.reject    RST / ICMP unreachable frames for reject actions

Pure: no sockets, no clocks (time is `meta.ts` / `tick(now)`), no globals,
no logging per packet.  `inspect` never raises: an exception inside is
counted (`engine.errors`) and the frame follows the engine's exception
policy (`EngineSettings.exception_policy`).

A frame may hold several packets: the packet inside a GRE/VXLAN carrier and
the datagram rebuilt from fragments are inspected before the packet that
carried them (as Suricata runs its pseudo-packets first), and a drop of such
an inner packet drops the carrier, which is then not inspected.  Per packet:
a flow already dropped drops the packet (reason "flow"); a passed flow skips
detection; a TCP flow the stream engine does not track follows the
midstream policy; a TCP packet goes through the stream stage (its memcap
policies may decide it); then detection and the verdict stage decide.  In IDS
mode the stream also inspects data when a flow ends (`tick`, `finish`), on a
pseudo packet without pcap_cnt, as Suricata does at flow timeout.

Flow decisions: a flow needs no more inspection once a verdict holds for all
of it (a flow-wide drop or pass, an exception policy's drop-flow/pass-flow/
bypass), a matching rule has the `bypass` keyword, `stream.bypass` is on and
either direction reached the reassembly depth (Suricata bypasses from the next
packet), or no rule can match any later packet of it in either direction (its
header candidates hold only IP-only rules already run).  Such a flow skips
detection, and its frames carry `Result.bypass` so the data plane can take the
flow out of the frame path (bridge.fastpath, bridge.ebpf); `bypassed` keeps the
flow's counters and timeout right for the frames it then never sees.  Counted
as flow.decided.<reason>.
"""
from __future__ import annotations

from rules.api import CSUM_AUTO, CSUM_SKIP, FORWARD, Bypass, FrameMeta, InspectTimeout, Result, Verdict
from rules.checksum import fill_l4_checksum
from rules.decode import CHECKSUM_SAMPLE_COUNT, ChecksumChecks, decode
from rules.defrag import Defragmenter
from rules.detect import Detector, _order_key
from rules.events import Alert, DecoderEvent, Drop, PacketInfo, headers, pkt_src_of
from rules.flow import FlowTable, TrackedFlow
from rules.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet
from rules.prefilter import AnyPattern
from rules.reject import reject_frames
from rules.settings import EngineSettings
from rules.stream import MASK as _MASK
from rules.stream import StreamEngine, StreamView
from rules.thresholds import Thresholds
from rules.verdict import POLICY_EFFECTS, decide

try:       # the lanes compiled (rules/_hotpath.c, built by the install): Engine.front
    from rules._hotpath import Lanes as _CLanes
except ImportError:                # pragma: no cover
    _CLanes = None


_NO_HITS: frozenset = frozenset()
_FORWARD = Verdict.FORWARD
_ACK = 0x10                            # TCP flags of the lean lane's packets (Engine._lean_tcp)
_ACK_PSH = 0x18
_BY_RULE = ("rule", "rate_filter")     # drop reasons a rule decided (rules.verdict.Decision.reason)


class _FrameDecision:
    """What the packets of one frame decided so far."""

    __slots__ = ("verdict", "reason", "drop_sid", "drop_pkt", "drop_alert", "events", "injects", "rewrite",
                 "bypass", "fwd_result")

    def __init__(self) -> None:
        self.verdict = _FORWARD
        self.reason = ""
        self.drop_sid = 0
        self.drop_pkt = None
        self.drop_alert = None         # the Alert a drop event embeds (the deciding rule's)
        # lists only once something is added (most frames have neither): see add_event
        self.events: list | tuple = ()
        self.injects: list | tuple = ()
        self.rewrite = None            # (packet, payload) to forward instead of the packet's own
        self.bypass = None             # rules.api.Bypass: the frame's flow is decided
        self.fwd_result = None         # the Result to give when the frame is just forwarded with `bypass`

    def add_event(self, event) -> None:
        ev = self.events
        if type(ev) is tuple:
            ev = self.events = list(ev)
        ev.append(event)

    def drop(self, pkt: Packet, reason: str, verdict: Verdict = Verdict.DROP, sid: int = 0,
             alert: Alert | None = None) -> None:
        """The first drop names the reason, unless a rule's drop comes later (a rule is
        the more useful reason)."""
        if self.verdict == Verdict.FORWARD or (reason in _BY_RULE and self.reason not in _BY_RULE):
            self.reason, self.drop_pkt, self.drop_sid, self.drop_alert = reason, pkt, sid, alert
        if verdict > self.verdict:
            self.verdict = verdict


def packet_info(pkt: Packet, pkt_src: str = "wire/pcap") -> PacketInfo:
    f = pkt.flow
    return PacketInfo(
        ts=pkt.ts, iface=pkt.iface, pcap_cnt=pkt.pcap_cnt, vlan=tuple(pkt.vlan), flow_id=f.flow_id if f is not None else 0,
        ipver=pkt.ipver, src=pkt.src, dst=pkt.dst, sport=pkt.sport, dport=pkt.dport, proto=pkt.proto,
        to_server=pkt.to_server if f is not None else None, length=pkt.length, ttl=pkt.ttl, ip_id=pkt.ip_id,
        tcp_flags=pkt.tcp_flags, icmp_type=pkt.icmp_type, icmp_code=pkt.icmp_code, pkt_src=pkt_src,
        app_proto=f.app.proto if f is not None and f.app is not None else "",
    )


def flow_end_packet(flow, to_server: bool) -> Packet:
    """The pseudo packet a flow's end is inspected on (no payload, no pcap_cnt), one per
    direction, at the time of the flow's last packet (as Suricata's flow timeout packet)."""
    p = Packet()
    p.ts = flow.last_ts
    p.vlan = flow.vlan
    p.ipver, p.proto = flow.ipver, flow.proto
    if to_server:
        p.src, p.sport, p.dst, p.dport = flow.cli, flow.cli_port, flow.srv, flow.srv_port
    else:
        p.src, p.sport, p.dst, p.dport = flow.srv, flow.srv_port, flow.cli, flow.cli_port
    p.flow = flow
    p.to_server = to_server
    return p


def _body_lane() -> tuple:
    """What the compiled lanes' body lane needs to know of the Python classes whose work it
    does (rules/_hotpath.c body_lane): the HTTP parser's class, the TCP session's CLOSED
    state, the stream's prune step, and the HTTP Body states of a plain body; and for a
    transaction run it answers itself when it would be quiet (tx_quiet), the transaction
    detector's class with its own `run` and `_candidates` (an instance that replaces either
    is left to Python), the candidate selection, the quiet records' keys, DONE, and what it
    needs to scan a growing HTTP body's slot itself."""
    from rules.applayer import http, http_body
    from rules.applayer.base import DONE, GROWN
    from rules import detect_tx, stream

    txd = detect_tx.TxDetector
    # a growing body's slot as the quiet run scans it itself: the bodies' getters (by side)
    # and where _Slot.packed holds the fields it reads
    at = detect_tx.PACKED.index
    grown = (GROWN[http._RESP_BODY], GROWN[http._REQ_BODY],
             at("side"), at("progress"), at("get"), at("grows"), at("db"), at("overlap"))
    quiet = (txd, txd.__dict__["run"], txd.__dict__["_candidates"], detect_tx._CANDIDATES, detect_tx._QUIET, DONE,
             grown)
    return (http.Parser, stream.CLOSED, stream.PRUNE_STEP, http_body._LENGTH, http_body._CLOSE, http_body._DATA,
            quiet)


class Engine:
    # (slots: the compiled lanes read these on every frame, by offset; everything else is
    # in __dict__)
    __slots__ = ("lean", "app", "detector", "__dict__")

    def __init__(self, rules, settings: EngineSettings | None = None, *, rules_failed: int = 0) -> None:
        self.settings = settings = settings if settings is not None else EngineSettings()
        self.mode = settings.mode
        self.detector = Detector(rules)
        self.flows = FlowTable(settings.flow, settings.stream)
        overlap_rule = any("reassembly_overlap_different_data" in s.rule.stream_events for s in self.detector.sigs)
        self.streams = StreamEngine(settings.stream, settings.inline_stream, self.detector.stream_scanner(),
                                    check_overlap=overlap_rule)
        self.defrag = Defragmenter(settings.defrag, settings.decoder)
        self.checksums = ChecksumChecks()      # FrameMeta.checksum: checksum-checks auto's sample
        self.thresholds = Thresholds()
        self._rebuilt: tuple = (-1, [])    # (frame number, datagrams rebuilt from fragments in it): pkt_src
        self.hits: dict[tuple[int, int], int] = {}   # (gid, sid) -> alerts it raised (thresholded ones not counted)
        self.hit_msgs: dict[tuple[int, int], str] = {}   # (gid, sid) -> its rule's msg (rule_hits)
        self.c: dict[str, int] = {
            "packets": 0, "alerts": 0, "drops": 0, "engine.errors": 0, "detect.matched": 0,
            "decoder.packets_with_events": 0,
            "rules.loaded": len(self.detector.sigs), "rules.failed": rules_failed,
            "bypass.frames": 0, "bypass.prefiltered": 0,
        }
        self._cur: tuple = ()          # the packets of the frame being inspected (for the exception policy)
        self._stream_bypass = settings.stream.bypass
        self.lean = True               # the lean lane for established TCP segments (_lean_tcp)
        # the app layer, when some rule needs an app-layer protocol (rules.applayer)
        self.app = _app_stage(self.detector, settings)
        self.streams.app_on = self.app is not None
        dec = settings.decoder
        self._tunnel_ports = frozenset(dec.vxlan_ports) if dec.vxlan_enabled else frozenset()

    # ------------------------------------------------------------------ Inspector
    def inspect(self, frame, meta: FrameMeta) -> Result:
        self._cur = ()
        try:
            return self._inspect(frame, meta)
        except InspectTimeout:
            return self._on_timeout()
        except Exception:
            self.c["engine.errors"] += 1
            return self._on_exception()

    def _lane_detect(self, pkt: Packet, flow, buf: bytes, seen) -> Result:
        """A lean-lane data segment already taken into its stream, with a fast pattern in its
        inline window (bytes `buf`, prefilter ids `seen`): detection runs on it.  Called by
        `_lean_tcp` and by the compiled lane (rules/_hotpath.c Lanes, which has counted the
        packet and has no `inspect` around it): an exception is answered here, as `inspect`
        answers it."""
        self._cur = (pkt,)
        try:
            d = _FrameDecision()
            self._detect_stage(pkt, flow, StreamView((buf,), bytes(pkt.payload), seen, False, True), False, d)
            return self._result(d, pkt)
        except InspectTimeout:
            return self._on_timeout()
        except Exception:
            self.c["engine.errors"] += 1
            return self._on_exception()

    def _lane_app(self, pkt: Packet, flow, me, n: int, to_server: bool, skipped: int, short) -> Result:
        """A lean-lane app-layer data segment the compiled lane checked as `_lean_tcp` does,
        counted and took into its stream (rules/_hotpath.c Lanes): `_app_segment` on it,
        with an exception answered here, as `inspect` answers it."""
        self._cur = (pkt,)
        try:
            return self._app_segment(pkt, flow, me, n, to_server, skipped, short)
        except InspectTimeout:
            return self._on_timeout()
        except Exception:
            self.c["engine.errors"] += 1
            return self._on_exception()

    # the methods the compiled lane hands a frame to, outside `inspect` (a worker's Watchdog
    # bounds their time as it bounds inspect's)
    LANE_ENTRIES = ("_lane_detect", "_lane_app", "_lane_tx")

    def _on_timeout(self) -> Result:
        self.c["engine.timeouts"] = self.c.get("engine.timeouts", 0) + 1
        return self._on_exception()

    def front(self):
        """What the data plane calls per frame instead of `inspect`, with the same answers and
        the same effects: `inspect` behind the compiled lanes (rules/_hotpath.c Lanes), which
        answer themselves what `_lean_udp` and `_lean_tcp` would -- a datagram of a flow
        direction with a scan offer whose scan finds nothing, a pure ACK, and the next
        in-order data of an established session (with an app layer loaded, handed to
        `_lane_app` once taken into its stream) -- and hand every other frame to `inspect`.
        `inspect` itself without the compiled module.  One per engine and process (it
        cannot be pickled); cheap to make."""
        if _CLanes is None:
            return self.inspect
        dec = self.settings.decoder
        return _CLanes(self, self.inspect, self.c, self.flows.table(), self.streams, self.checksums.sources,
                       dec.checksum_validation, dec.vxlan_ports if dec.vxlan_enabled else None,
                       AnyPattern, TrackedFlow, FORWARD, CSUM_AUTO, CSUM_SKIP, CHECKSUM_SAMPLE_COUNT,
                       _body_lane())

    def tick(self, now: float) -> tuple:
        """Advance time: flows, datagrams and threshold windows expire.  Returns the events
        of the ended flows' last inspection (IDS mode)."""
        events: list = []
        try:
            self.defrag.expire(now)
            for f in self.flows.expire(now):
                self._flow_end(f, events)
            self.detector.trim(len(self.flows))
            self.detector.state.prune(now)       # expired xbits (rules.keywords.xbits)
            self.thresholds.prune(now)
        except Exception:
            self.c["engine.errors"] += 1
        return tuple(events)

    def finish(self) -> tuple:
        """The end of the input (replay, shutdown): every flow ends now.  Returns the events
        of their last inspection (IDS mode), as Suricata's flow timeout at exit."""
        events: list = []
        try:
            for f in self.flows.drain():
                self._flow_end(f, events)
        except Exception:
            self.c["engine.errors"] += 1
        return tuple(events)

    def _flow_end(self, flow, events: list) -> None:
        """A flow ended: in IDS mode its streams' uninspected data is inspected a last time,
        then its state goes."""
        flow.ended = True
        if flow.app is not None and flow.app.parser is not None and self.detector.tx is not None:
            self._app_flow_end(flow, events)
        self.detector.forget(flow.flow_id)
        if flow.tcp is None:
            return
        for to_server, bufs in self.streams.flush(flow):
            if flow.dropped or flow.action_pass:
                continue
            pkt = flow_end_packet(flow, to_server)
            hits: set = set()
            matches = self.detector.run_pseudo(pkt, bufs, self.thresholds, hits)
            if matches:
                d = _FrameDecision()
                self._decide(pkt, flow, matches, hits, d, pkt_src="stream (flow timeout)")
                events.extend(d.events)
        self.streams.release(flow)

    def _app_flow_end(self, flow, events: list) -> None:
        """The flow's end completes its open transactions (a body to the end of the stream,
        a handshake never finished): their rules are inspected a last time on the end-of-flow
        pseudo packet of each direction, as Suricata's flow timeout detection does in every
        mode (EVE pcap_cnt absent, pkt_src "stream (flow timeout)")."""
        st = flow.app
        if flow.dropped or flow.action_pass:
            return
        for to_server, data in self.streams.app_rest(flow):      # IDS: what was never acknowledged
            self.app.feed_tcp(flow, to_server, data)
        self.app.end(flow, True)
        self.app.end(flow, False)
        for to_server in (True, False):
            pkt = flow_end_packet(flow, to_server)
            hits: set = set()
            matches = self.detector.tx.run(pkt, flow, st, b"", None, self.thresholds, hits)
            if matches:
                d = _FrameDecision()
                self._decide(pkt, flow, matches, hits, d, pkt_src="stream (flow timeout)")
                events.extend(d.events)
        st.parser.txs = []

    def _end_now(self, d: _FrameDecision) -> None:
        """The lookup evicted a flow (flow.memcap) or replaced one (TCP port reuse): its state
        goes now, not at the next tick.  Under a flood of new flows the sessions and held
        segments of flows already evicted filled stream.memcap and the reassembly memcap for
        up to a tick, and every new session was refused meanwhile (in ips mode, with the
        default policy, a new legitimate connection was dropped).  In IDS mode their last
        inspection's events come with this frame."""
        events: list = []
        for f in self.flows.take_ended():
            self._flow_end(f, events)
        for ev in events:
            d.add_event(ev)

    def adopt_rules(self, new: Engine) -> int:
        """A rule reload: take `new`'s rules (an Engine built from the new rule set with the
        same settings) and keep this engine's flows, streams and fragments.  Flows already
        decided keep their decision (a dropped flow stays dropped, a pass flow stays passed,
        as Suricata's bypassed flows do), except UDP flows decided only because no rule
        applied to them ("no-rules"): the new rules inspect them again.  Per-flow prefilter
        state belongs to the old rules and goes.  Threshold counters start again.  Returns
        how many flows were reopened.  The data plane must drop its fast-path entries."""
        new.detector.keep_state(self.detector)      # xbits and flowints go on
        self.detector = new.detector
        new.thresholds.evicted += self.thresholds.evicted     # a count, not state: it goes on
        if self.hits:      # rule_hits names each rule as the rules in force do ("" once it is gone)
            msgs = {(s.rule.gid, s.rule.sid): s.rule.msg for s in new.detector.sigs}
            self.hit_msgs = {k: msgs.get(k, "") for k in self.hits}
        self.thresholds = new.thresholds
        self.streams.scanner = new.streams.scanner
        self.streams.check_overlap = new.streams.check_overlap
        self.streams.track_segs = new.streams.track_segs
        self.app = new.app if new.app is not None else self.app
        self.streams.app_on = self.app is not None
        reopened = 0
        for flow in self.flows.all():
            flow.prefilter = None
            st = flow.app
            if st is not None and st.parser is not None:
                st.parser.tx_idle = [None, None]    # the new rules run on the next packet
                for tx in st.parser.txs:        # the old rules' per-transaction state
                    tx.inspected = (set(), set())
                    tx.found = {}
            ssn = flow.tcp
            if ssn is not None:
                ssn.client.seen.clear()
                ssn.server.seen.clear()
            if flow.decided == "no-rules" and flow.proto == IPPROTO_UDP:
                flow.decided = ""
                flow.action_pass = False
                reopened += 1
        self.c["rules.loaded"] = new.c["rules.loaded"]
        self.c["rules.failed"] = new.c["rules.failed"]
        self.c["rules.reloads"] = self.c.get("rules.reloads", 0) + 1
        return reopened

    def rule_hits(self, top: int = 50) -> list[tuple[int, int, int, str]]:
        """The rules that raised the most alerts: [(gid, sid, hits, msg)], most first."""
        msgs = self.hit_msgs
        best = sorted(self.hits.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
        return [(g, s, n, msgs[(g, s)]) for (g, s), n in best]

    def stats(self) -> dict[str, int]:
        out = dict(self.c)
        out["detect.evaluated"] = self.detector.evaluated
        out.update(self.flows.stats())
        out.update(self.streams.stats())
        out.update(self.defrag.stats())
        out.update(self.checksums.stats())
        out.update(self.detector.stats())
        if self.app is not None:
            out.update(self.app.stats())
        out.update(self.thresholds.stats())
        return out

    # ------------------------------------------------------------------ one frame
    def _inspect(self, frame, meta: FrameMeta) -> Result:
        self.c["packets"] += 1
        pkts = decode(frame, meta, self.settings.decoder, self.checksums)
        self._cur = pkts
        if len(pkts) == 1:                     # the common frame: no tunnel layers inside
            pkt = pkts[0]
            if self.lean and not pkt.events and not pkt.frag:
                proto = pkt.proto
                if proto == IPPROTO_TCP:
                    r = self._lean_tcp(pkt)
                    if r is not None:
                        return r
                elif proto == IPPROTO_UDP or _echo(pkt):
                    r = self._lean_udp(pkt)
                    if r is not None:
                        return r
            d = _FrameDecision()
            self._packet(pkt, None, d)
            return self._result(d, pkt)
        d = _FrameDecision()
        inner: dict[int, list] = {}            # id(carrier) -> packets decoded out of it
        for p in pkts[1:]:
            inner.setdefault(id(p.outer), []).append(p)
        self._packet(pkts[0], inner, d)
        return self._result(d, pkts[0])

    def _lean_tcp(self, pkt: Packet) -> Result | None:
        """The lean lane: the packet most TCP traffic is made of -- an ACK or ACK+PSH of an
        established flow no decision took out of inspection, the next in-order segment of
        its direction or no payload, inline -- through the flow, stream, app-layer and
        detect stages with only the work that packet needs, as `_packet` would do it.
        When no fast pattern of the packet rules that could match lies in the segment's
        inline window, detection has nothing to run: without an app layer the frame is
        forwarded without a StreamView or a detection call; with one, the segment's bytes
        go to the flow's parser as on the general path and only the transaction rules run
        (`_app_segment`).  Everything is checked before anything changes: None (nothing
        changed) sends the packet down the general path.  `lean = False` turns the lane
        off (tests compare both)."""
        flags = pkt.tcp_flags
        if (flags != _ACK and flags != _ACK_PSH) or pkt.csum_ok is False:
            return None
        payload = pkt.payload
        n = len(payload)
        streams = self.streams
        if not streams.inline:
            return None
        # the flow stage: an established flow, not decided
        found = self.flows.find(pkt)
        if found is None:
            return None
        key, flow = found
        ssn = flow.tcp
        # (a decided flow is dropped or passed: _mark sets one with `decided`)
        if flow.state != "established" or flow.dropped or flow.action_pass or ssn is None \
                or not ssn.simple or ssn.fin_due:
            return None
        src = pkt.src
        sport = pkt.sport
        to_server = flow.cli == src and flow.cli_port == sport
        if not (flow.pkts_toserver if to_server else flow.pkts_toclient):
            return None                    # a direction's first packet: IP-only rules, decisions
        # the stream stage: StreamEngine.update's established-segment bookkeeping
        if to_server:
            me, peer = ssn.client, ssn.server
        else:
            me, peer = ssn.server, ssn.client
        if me.done or peer.done:
            return None
        ack = peer.offset(pkt.ack)
        if peer.window >= 0 and ack > peer.last_ack + peer.window:
            return None                    # an invalid acknowledgment: its event
        app = self.app
        app_data = False
        if app is not None:
            st = flow.app
            if n:
                # a data segment with app-layer rules loaded: its bytes go to the app layer as on
                # the general path (detection, or the flow's parser); not once the payload is
                # encrypted (no payload inspection: the general path)
                if st is not None and st.parser is not None and st.parser.no_inspect_payload:
                    return None
                app_data = True
            elif st is not None:
                # a pure ACK of an app-layer flow: the app layer gets nothing from it (inline, its
                # direction's data was handed over as it came in), and no transaction runs unless
                # the packet before left them uninspected (an error policy answered it first)
                parser = st.parser
                if st.fed or parser is not None and (parser.bypass_ready or parser.failed and not st.error_seen):
                    return None
        if n:
            left = me.end
            if (pkt.seq - me.base - left) & _MASK or me.ooo:
                return None                # not the next in-order segment
            right = left + n
            if not streams.fits_in_order(me, right, n):
                return None
        # the detect stage: only packet rules with a fast pattern could match
        short = None
        if app_data:
            gate = self.detector.data_gate(flow, to_server, src, sport, flags)
            if gate is None:
                return None
            skipped, short = gate
        else:
            skipped = self.detector.prefilter_gate(flow, to_server, src, sport, flags, empty=not n)
            if skipped < 0:
                return None
        # taken: from here on the packet goes through
        self.flows.established_seen(key, flow, pkt, to_server)
        if ack > peer.last_ack:
            peer.last_ack = ack
        peer.window = pkt.win << me.scale
        if n:
            if me.next_seq < right + 1 < me.next_seq + (1 << 30):
                me.next_seq = right + 1
            streams.take_in_order(me, payload, n)
            if app_data:
                return self._app_segment(pkt, flow, me, n, to_server, skipped, short)
            buf, seen = streams.inline_window(me, n, to_server, False)
            if seen and self.detector.window_candidates(pkt, flow, to_server, seen):
                # a fast pattern of the direction's rules in the window: detection runs
                return self._lane_detect(pkt, flow, buf, seen)
        self.detector.evaluated += skipped
        return FORWARD

    def _app_segment(self, pkt: Packet, flow, me, n: int, to_server: bool, skipped: int, short) -> Result:
        """The lean lane's app-layer data segment, taken into its stream: its inline window
        and view as `StreamEngine.update` gives them.  A fast pattern of the flow
        direction's packet rules in the window (or a 1-2 byte one), or a parser that gave
        up or turned to bypass on these bytes, goes on as `_detect_stage` does.  Otherwise
        detection would find no candidate (it counts the IP-only rules it skips): the app
        layer gets the bytes (protocol detection, or the flow's parser; a segment that only
        continues a body goes through the parser's shortcut, Parser.take), and the
        transaction rules run on what the parser made of them, unless the direction is idle
        (TxDetector.idle: the run would skip it)."""
        buf, seen = self.streams.inline_window(me, n, to_server, True)
        pl = bytes(pkt.payload)
        if seen and self.detector.window_candidates(pkt, flow, to_server, seen) \
                or short and self.detector.short_candidates(short, (buf,), (pl,)):
            d = _FrameDecision()
            self._detect_stage(pkt, flow, StreamView((buf,), pl, seen, False, True), False, d)
            return self._result(d, pkt)
        st = flow.app
        if st is not None and st.parser is not None and self.streams.app_next(flow, me, n):
            # the segment is the app layer's next data, alone (as _app_feed would hand it over)
            if not self.app.take_tcp(st, to_server, pl):
                st = self.app.feed_tcp(flow, to_server, pl)
        else:
            st = self._app_feed(pkt, flow, pl)
        parser = st.parser if st is not None else None
        if parser is not None and (parser.failed and not st.error_seen or parser.bypass_ready):
            d = _FrameDecision()
            self._fed_stage(pkt, flow, StreamView((buf,), pl, seen, False, True), pl, set(), st, False, d)
            return self._result(d, pkt)
        self.detector.evaluated += skipped
        if parser is None or not st.fed:   # no parser on the flow (yet), or nothing new for transactions
            return FORWARD
        txd = self.detector.tx
        if txd is not None and parser.txs and txd.idle(parser, to_server, flow):
            # the run would skip this direction (and collect would find nothing spent: no
            # transaction completes without moving the parser's gen)
            st.fed = False
            return FORWARD
        return self._app_tx(pkt, flow, st, buf, pl, seen)

    def _app_tx(self, pkt: Packet, flow, st, buf: bytes, pl: bytes, seen) -> Result:
        """`_app_segment`'s last step: the transaction rules on what the parser made of the
        segment (its window `buf`, payload `pl`, prefilter ids `seen`), then the decision."""
        txd = self.detector.tx
        hits: set = set()
        view = StreamView((buf,), pl, seen, False, True)
        txm = txd.run(pkt, flow, st, pl, view, self.thresholds, hits) if txd is not None else []
        self.app.collect(st, txd is not None and txd.inspects(st.proto))
        if not txm:
            return FORWARD
        d = _FrameDecision()
        self._decide(pkt, flow, txm, hits, d)
        if flow.decided:
            self._offer(pkt, flow, d)
        return self._result(d, pkt)

    def _lane_tx(self, pkt: Packet, flow, st, buf: bytes, pl: bytes, seen) -> Result:
        """A body segment the compiled lane took in itself, stream and parser (Lanes'
        body_lane), whose transactions are not idle: `_app_tx` on it, with an exception
        answered here, as `inspect` answers it."""
        self._cur = (pkt,)
        try:
            return self._app_tx(pkt, flow, st, buf, pl, seen)
        except InspectTimeout:
            return self._on_timeout()
        except Exception:
            self.c["engine.errors"] += 1
            return self._on_exception()

    def _lean_udp(self, pkt: Packet) -> Result | None:
        """The UDP lane: a later datagram of a flow direction the engine offered Bypass "scan"
        for (`_offer_scan`: only rules with a fast pattern could match it), in which the
        offer's scan finds nothing -- the same datagrams the data plane's fast path forwards
        on that offer, here when it has none (bypass: off, replay) or handed the datagram
        over.  As `_packet` would: the flow counts it, the app layer has nothing to do (no
        parser, and this direction cannot start one), detection has no candidate (it counts
        the IP-only rules it skips), and the result is the offer again.  None (nothing
        changed) sends the datagram down the general path.  An ICMP echo request or reply
        (`_echo`) of an echo flow takes the same lane: its flow has no app layer at all."""
        found = self.flows.find(pkt)
        if found is None:
            return None
        key, flow = found
        offers = flow.prefilter
        # (a decided flow is dropped or passed: _mark sets one with `decided`)
        if offers is None or flow.dropped or flow.action_pass or pkt.csum_ok is False:
            return None
        src = pkt.src
        sport = pkt.sport if pkt.proto == IPPROTO_UDP else pkt.icmp_type     # (an echo flow's "port")
        to_server = flow.cli == src and flow.cli_port == sport
        offer = offers[to_server]
        if not offer:
            return None
        if self.app is not None and pkt.proto == IPPROTO_UDP and not self.app.udp_quiet(flow, to_server):
            return None
        r, skipped, scan = offer
        payload = pkt.payload
        if payload:
            if scan is not None and scan(bytes(payload)):
                return None                    # a fast pattern: the rules run
        self.flows.established_seen(key, flow, pkt, to_server)
        self.detector.evaluated += skipped
        return r

    def _result(self, d: _FrameDecision, first: Packet) -> Result:
        verdict, events, injects = d.verdict, d.events, d.injects
        frame = None
        if d.rewrite is not None and verdict == _FORWARD:
            frame = _rewritten(*d.rewrite)
        if verdict != _FORWARD:
            self.c["drops"] += 1
            self._count(f"drops.{d.reason}")
            if self.mode == "ips":
                dp = d.drop_pkt if d.drop_pkt is not None else first
                d.add_event(Drop(packet_info(dp, self._pkt_src(dp)), d.reason, d.drop_sid, d.drop_alert,
                                 *headers(dp)))
                if dp is not first:
                    # a packet out of a tunnel or rebuilt from fragments: its frame goes too (Suricata
                    # logs both, the frame with "tunnel packet drop")
                    d.add_event(Drop(packet_info(first), "tunnel", 0, None, *headers(first)))
                events = d.events
            if verdict == Verdict.REJECT and not injects:
                verdict = Verdict.DROP
        if not events and verdict == _FORWARD and frame is None:
            if d.bypass is None:
                return FORWARD
            if d.fwd_result is not None:
                return d.fwd_result
        return Result(verdict, tuple(events), d.reason, tuple(injects), frame, d.bypass)

    def _packet(self, pkt: Packet, inner: dict | None, d: _FrameDecision) -> bool:
        """Inspect `pkt` after the packets decoded out of it (`inner`: id(carrier) -> its
        packets, None when the frame holds one packet); True when it is dropped."""
        kids = inner.get(id(pkt)) if inner is not None else None
        tunnelled = bool(kids)
        if pkt.frag and pkt.ipver:
            # fragments are inspected as they are (IP-level rules) and, once a datagram
            # completes, the rebuilt datagram is inspected with the completing frame
            more = self.defrag.feed(pkt)
            if more:
                self._cur = self._cur + more
                frame_no = self.c["packets"]
                if self._rebuilt[0] != frame_no:
                    self._rebuilt = (frame_no, [])
                self._rebuilt[1].append(more[0])
                if inner is None:
                    inner = {}
                for p in more[1:]:
                    inner.setdefault(id(p.outer), []).append(p)
                kids = list(kids or ()) + [more[0]]
        if pkt.events:
            self._decoder_events(pkt, d)
        if kids:
            for p in kids:
                if self._packet(p, inner, d):
                    return True
        if not pkt.ipver:
            if pkt.events and self.detector.pkthdr:
                return self._decide(pkt, None, self.detector.run_nonip(pkt, self.thresholds), set(), d)
            return False
        flow = self.flows.lookup(pkt)
        if self.flows.ended:
            self._end_now(d)
        if flow is not None:
            if flow.dropped:
                d.drop(pkt, "flow")
                self._offer(pkt, flow, d)
                return True
            if flow.action_pass:
                self._offer(pkt, flow, d)
                return False
            if pkt.proto == IPPROTO_TCP and (not flow.tcp_session or (flow.midstream and flow.tcp is None)) \
                    and pkt.csum_ok is not False:
                # a TCP flow the stream engine does not track (stream.midstream off), or the
                # packet a session is picked up on (midstream on): Suricata's midstream
                # exception policy decides (with midstream on only ignore or pass-flow); a
                # packet with a bad checksum never reaches Suricata's stream engine, so not it
                act = self._policy(self.settings.stream.midstream_policy, "midstream", pkt, flow, d)
                if act is not None:
                    return act
        view = None
        if pkt.proto == IPPROTO_TCP and flow is not None and not tunnelled:
            view, policy = self.streams.update(pkt, flow)
            if policy == "invalid":
                if self.settings.stream.drop_invalid and self.settings.inline_stream:
                    # dropped; detection still runs without payload inspection, so stream-event
                    # rules see it (as Suricata's drop-invalid)
                    self._decide(pkt, flow, self.detector.run(pkt, flow, b"", self.thresholds), set(), d)
                    d.drop(pkt, "stream-invalid")
                    return True
            elif policy:
                name = "stream_memcap" if policy == "memcap" else "stream_reassembly_memcap"
                act = self._policy(self.settings.stream.memcap_policy if policy == "memcap"
                                   else self.settings.stream.reassembly_memcap_policy, name, pkt, flow, d)
                if act is not None:
                    return act
            if view is not None and view.rewritten and pkt.outer is None and not pkt.frag:
                d.rewrite = (pkt, view.payload)
        return self._detect_stage(pkt, flow, view, tunnelled, d)

    def _detect_stage(self, pkt: Packet, flow, view, tunnelled: bool, d: _FrameDecision) -> bool:
        """After the flow and stream stages: the app layer, detection, the verdict and the
        flow decisions on `pkt` (`view`: what the stream offers it, None for none); True
        when it is dropped."""
        if view is not None:
            payload = view.payload
            hits: set = set()                  # signatures whose payload matched on the stream
        else:
            payload = bytes(pkt.payload)
            hits = _NO_HITS                    # (only a stream view adds to it)
        st = None
        if self.app is not None and flow is not None and not tunnelled:
            parser = flow.app.parser if flow.app is not None else None
            encrypted = parser is not None and parser.no_inspect_payload
            if pkt.proto == IPPROTO_UDP:          # a datagram: no stream to consult
                st = self.app.feed_udp(flow, pkt.to_server, payload) if payload else None
            else:
                st = self._app_feed(pkt, flow, payload)
            if encrypted:
                # encrypted since an earlier packet (Suricata inspects the packet that made it
                # so): no payload inspection, packet or stream; header rules still run
                payload, view = b"", None
        return self._fed_stage(pkt, flow, view, payload, hits, st, tunnelled, d)

    def _fed_stage(self, pkt: Packet, flow, view, payload: bytes, hits: set, st, tunnelled: bool,
                   d: _FrameDecision) -> bool:
        """_detect_stage once the app layer has had the packet (`st`: the flow's AppState
        when it was fed, else None): what the parser decided (TLS bypass, its error
        policy), detection, the transactions, the verdict and the flow decisions.  True
        when the packet is dropped."""
        if st is not None and st.parser is not None:
            if st.parser.bypass_ready and not flow.decided:
                # TLS encryption-handling: bypass -- encrypted from here: no more inspection, and the
                # flow leaves the frame path (fast path / kernel), as Suricata bypasses it
                self._mark(flow, "pass", "bypass")
            if st.parser.failed and not st.error_seen:
                # the parser gave up on this packet: app-layer.error-policy (Suricata's auto:
                # drop-flow inline), counted as policy.app_layer_error.<policy>
                st.error_seen = True
                act = self._policy(self.settings.app_error_policy, "app_layer_error", pkt, flow, d)
                if act is not None:
                    return act
        # a tunnel carrier is not flow-tracked by Suricata: its IP-only rules run every time
        matches = self.detector.run(pkt, None if tunnelled else flow, payload, self.thresholds, view, hits)
        if st is not None and st.fed:
            if hits is _NO_HITS:
                hits = set()
            txd = self.detector.tx
            txm = txd.run(pkt, flow, st, payload, view, self.thresholds, hits) if txd is not None else []
            self.app.collect(st, txd is not None and txd.inspects(st.proto))
            if txm:
                matches = sorted(matches + txm, key=_order_key) if matches else txm
        dropped = self._decide(pkt, flow, matches, hits, d) if matches else False
        if flow is not None and not tunnelled:
            if not flow.decided and (
                    (flow.pkts_toserver if pkt.to_server else flow.pkts_toclient) == 1
                    or (self._stream_bypass and flow.tcp is not None)):
                self._maybe_decide(pkt, flow)
            if flow.decided:
                self._offer(pkt, flow, d)
            elif pkt.proto == IPPROTO_UDP or (_echo(pkt) and flow.proto == pkt.proto):
                self._offer_scan(pkt, flow, d)
        return dropped

    def _app_feed(self, pkt: Packet, flow, payload: bytes):
        """Hand the packet's new in-order stream bytes (TCP; a UDP datagram goes to
        AppLayer.feed_udp straight from _packet) to the flow's app layer
        (rules.stream.StreamEngine.app_ready: inline as data arrives, IDS once
        acknowledged), and a direction's end as Suricata signals it: a RST ends both;
        inline, the session's close; IDS, the acknowledgment of the direction's FIN; and the
        flow's end (`_app_flow_end`) what is left.  Checked: a mutual-TLS handshake's
        to-client certificate rules alert at the flow's end inline; an HTTP response's rules
        on the server's FIN-ACK in IDS mode."""
        app = self.app
        if pkt.proto == IPPROTO_TCP:
            st = flow.app
            rst = pkt.tcp_flags & 0x04
            ready = self.streams.app_rest(flow) if rst else self.streams.app_ready(flow, pkt.to_server)
            for to_server, data in ready:
                if data is None:                 # that direction ended
                    if st is not None and st.parser is not None:
                        app.end(flow, to_server)
                    continue
                st = app.feed_tcp(flow, to_server, data)
            if rst and st is not None and st.parser is not None:
                app.end(flow, True)
                app.end(flow, False)
            return st
        return None

    def _decide(self, pkt: Packet, flow, matches: list, stream_hits: set, d: _FrameDecision,
                pkt_src: str = "") -> bool:
        """The verdict stage on `matches` (thresholds, suppressions and rate filters
        included), applied: flow mark, alerts, reject frames.  True when the packet is
        dropped.  `pkt_src`: EVE's, when not the packet's own (pkt_src_of)."""
        if not matches:
            return False
        self.c["detect.matched"] += len(matches)
        dec = decide(matches, self.mode, stream_hits, self.thresholds, pkt)
        if dec.thresholded:
            self._count("detect.thresholded", dec.thresholded)
        if flow is not None and not flow.dropped and not flow.action_pass:
            if dec.flow:
                self._mark(flow, dec.flow, dec.flow, "rule")
            elif dec.bypass:
                self._mark(flow, "pass", "bypass")
        if dec.passed:
            self._count("detect.pass")
        if not dec.alerts and dec.verdict == Verdict.FORWARD:
            return False
        info = packet_info(pkt, pkt_src or self._pkt_src(pkt))
        self._alerts(info, dec.alerts, d)
        if dec.reject and pkt.outer is None and not d.injects:
            d.injects = list(reject_frames(pkt, dec.reject))
        if dec.verdict == Verdict.FORWARD:
            return False
        r = dec.embed_sig.rule
        embedded = Alert(info, "blocked", r.action, r.gid, r.sid, r.rev, r.msg, r.category, r.priority)
        d.drop(pkt, dec.reason, dec.verdict, dec.sid, embedded)
        return True

    # ------------------------------------------------------------------ flow decisions
    def _mark(self, flow, action: str, reason: str, drop_reason: str = "") -> None:
        """Decide `flow`: "pass" (no more detection) or "drop" (every later packet dropped,
        `drop_reason` kept as its cause); `reason` says why (rules.api.Bypass.reason).  Its
        held stream data goes at once."""
        if action == "pass":
            flow.action_pass = True
        else:
            flow.dropped = drop_reason or reason
        flow.decided = reason
        self._count(f"flow.decided.{reason}")
        self.streams.release(flow)

    def _maybe_decide(self, pkt: Packet, flow) -> None:
        """Decisions the rules allow without a verdict, after `pkt` was inspected:
        stream.bypass (either direction reached the reassembly depth: Suricata bypasses
        the flow from the next packet on), or no rule can match any later packet of the
        flow in either direction (checked on the first packet of each direction)."""
        if self._stream_bypass:
            ssn = flow.tcp
            if ssn is not None and (ssn.client.done or ssn.server.done):
                self._mark(flow, "pass", "stream-depth")
                return
        proto = flow.proto
        if (proto == IPPROTO_TCP or proto == IPPROTO_UDP or proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6) \
                and (flow.pkts_toserver if pkt.to_server else flow.pkts_toclient) == 1:
            det = self.detector
            if det.could_match(pkt, flow, iponly=False):
                return
            back = flow_end_packet(flow, not pkt.to_server)
            if proto != IPPROTO_TCP and proto != IPPROTO_UDP:
                back.sport = back.dport = 0       # an ICMP flow's "ports" are its types; its packets have none
            # IP-only rules ran on this packet; the other direction's run on its first packet
            other_seen = (flow.pkts_toclient if pkt.to_server else flow.pkts_toserver) > 0
            if not det.could_match(back, flow, iponly=not other_seen):
                self._mark(flow, "pass", "no-rules")

    def _offer(self, pkt: Packet, flow, d: _FrameDecision) -> None:
        """Tell the data plane the frame's flow is decided, when it can take the flow out of
        the frame path: an untunnelled, unfragmented TCP/UDP/ICMP packet alone in its frame,
        and for TCP an established session (the handshake, FIN and RST keep coming here).
        The data plane keys only some of them (bridge.fastpath: ICMP echo, not other
        messages); the rest keep coming here."""
        if len(self._cur) != 1 or pkt.frag:
            return
        proto = pkt.proto
        if proto == IPPROTO_TCP:
            if flow.state != "established":
                return
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            if flow.proto != proto:
                return                  # an ICMP error joined to the flow of the packet it quotes
        elif proto != IPPROTO_UDP or pkt.sport in self._tunnel_ports or pkt.dport in self._tunnel_ports:
            # a datagram on a tunnel port may carry a packet the engine must decode and
            # inspect, whatever the flow's earlier datagrams were: never out of the frame path
            return
        d.bypass = Bypass(flow, "drop" if flow.dropped else "pass", pkt.to_server, flow.decided)

    def _offer_scan(self, pkt: Packet, flow, d: _FrameDecision) -> None:
        """An undecided UDP flow (or ICMP echo flow: `_echo`) whose later datagrams in this
        direction can only match a rule through a fast pattern in their payload: offer Bypass
        "scan", so the data plane runs the prefilter on them itself and hands over only those
        it finds something in.  Worked out once per flow direction (the candidates depend on
        the header alone; an echo flow's "ports" are its message types)."""
        if len(self._cur) != 1 or pkt.frag or pkt.sport in self._tunnel_ports or pkt.dport in self._tunnel_ports:
            return
        offers = flow.prefilter
        if offers is None:
            offers = flow.prefilter = [None, None]
        to_server = pkt.to_server
        offer = offers[to_server]
        if offer is None:
            # transaction rules wait while this direction can start no parser (it refused
            # every protocol): until the other direction's first datagram finds one, which
            # clears these offers (AppLayer.feed_udp) and makes the data plane's copy hand
            # every datagram over (_while_no_parser)
            quiet = self.app is not None and pkt.proto == IPPROTO_UDP and self.app.udp_quiet(flow, to_server)
            scan = self.detector.prefilter_only(pkt, flow, tx_quiet=quiet)
            if scan is False:
                offer = offers[to_server] = False
            else:
                # the data plane's copy watches for a parser itself; _lean_udp checks
                # udp_quiet and scans with the prefilter's own scan
                late = False
                if pkt.proto != IPPROTO_UDP:
                    # an echo flow: the data plane's scan leaves out the patterns of rules whose
                    # itype cannot take this direction's type (it hands over other codes); an
                    # echo no rule that could change its verdict can match may leave first (no
                    # app layer, no stream: rules are all that decides it)
                    shown = self.detector.prefilter_only(pkt, flow, by_type=True)
                    late = self.detector.verdict_scan(pkt, flow)
                elif quiet and not flow.app.proto:
                    shown = _while_no_parser(flow.app, scan)
                else:
                    shown = scan
                r = Result(Verdict.FORWARD, bypass=Bypass(flow, "scan", to_server, "prefilter", shown, late))
                # (with the IP-only candidates a later datagram's detection skips, for _lean_udp)
                offer = offers[to_server] = (r, self.detector.iponly_skipped(pkt, flow), scan)
        if offer:
            d.bypass = offer[0].bypass
            d.fwd_result = offer[0]

    def bypassed(self, flow, ts: float, pkts_toserver: int, bytes_toserver: int,
                 pkts_toclient: int, bytes_toclient: int) -> bool:
        """Frames of `flow` that the data plane handled without `inspect` since the last call
        (a decided flow's, or datagrams a Bypass "scan" let through): the flow's counters and
        last activity move on, so it times out as if they had been inspected.  False once
        the flow has ended here (the data plane then forgets it)."""
        if flow.ended:
            return False
        if pkts_toserver or pkts_toclient:
            flow.pkts_toserver += pkts_toserver
            flow.bytes_toserver += bytes_toserver
            flow.pkts_toclient += pkts_toclient
            flow.bytes_toclient += bytes_toclient
            self.flows.touch(flow, ts, pkts_toserver + pkts_toclient)
            # frames of a decided flow, or datagrams the data plane's prefilter scan let through
            self.c["bypass.frames" if flow.decided else "bypass.prefiltered"] += pkts_toserver + pkts_toclient
        return True

    # ------------------------------------------------------------------ helpers
    def _alerts(self, info: PacketInfo, alerts: list, d: _FrameDecision) -> None:
        c = self.c
        for s, action in alerts:
            r = s.rule
            c["alerts"] += 1
            key = (r.gid, r.sid)
            self.hits[key] = self.hits.get(key, 0) + 1
            self.hit_msgs[key] = r.msg
            d.add_event(Alert(info, action, r.action, r.gid, r.sid, r.rev, r.msg, r.category, r.priority,
                              r.metadata))

    def _pkt_src(self, pkt: Packet) -> str:
        """EVE pkt_src of a packet of the frame being inspected."""
        at, rebuilt = self._rebuilt
        return pkt_src_of(pkt, at == self.c["packets"] and any(p is pkt for p in rebuilt))

    def _decoder_events(self, pkt: Packet, d: _FrameDecision) -> None:
        self.c["decoder.packets_with_events"] += 1
        for name in pkt.events:
            self._count(name)
        if self.settings.decoder_events:
            info = packet_info(pkt, self._pkt_src(pkt))
            for name in pkt.events:
                d.add_event(DecoderEvent(info, name))

    def _policy(self, policy: str, name: str, pkt: Packet, flow, d: _FrameDecision) -> bool | None:
        """Apply an exception policy to `pkt` (and its flow): True dropped, False forwarded
        without detection, None carry on with detection."""
        eff = POLICY_EFFECTS[policy]
        if eff.ignore:
            return None
        self._count(f"policy.{name}.{policy}")
        if flow is not None and eff.flow and not flow.dropped and not flow.action_pass:
            self._mark(flow, eff.flow, "policy", f"policy:{name}")
        if eff.verdict == Verdict.FORWARD:
            return False
        if eff.verdict == Verdict.REJECT and pkt.outer is None and not d.injects:
            d.injects = list(reject_frames(pkt, "reject"))
        d.drop(pkt, f"policy:{name}", eff.verdict)
        return True

    def _count(self, key: str, n: int = 1) -> None:
        c = self.c
        c[key] = c.get(key, 0) + n

    def _on_exception(self) -> Result:
        """An internal error: the frame follows the engine's exception policy (no reject
        frames: the packet may be half decoded)."""
        policy = self.settings.exception_policy
        eff = POLICY_EFFECTS[policy]
        if eff.flow:
            for p in self._cur:
                f = p.flow
                if f is None or f.dropped or f.action_pass:
                    continue
                self._mark(f, eff.flow, "policy", f"policy:{policy}")
        if eff.verdict == Verdict.FORWARD:
            return FORWARD
        self._count("drops")
        self._count(f"drops.policy:{policy}")
        return Result(Verdict.DROP, reason=f"policy:{policy}")


def _app_stage(detector, settings):
    """The app-layer stage for the protocols the rules need, or None when none does."""
    protos = {s.rule.app_proto for s in detector.sigs if s.rule.app_proto}
    for s in detector.sigs:
        protos |= s.rule.app_detect
    if not protos:
        return None
    from rules.applayer import AppLayer

    return AppLayer(protos, settings.app)


def _echo(pkt: Packet) -> bool:
    """An ICMP echo request or reply of code 0 (ICMPv4 8/0, ICMPv6 128/129): the ICMP
    messages whose flows take the scan offer and the UDP lane (Engine._offer_scan,
    _lean_udp), as the data plane's fast path keys them (bridge.fastpath)."""
    proto = pkt.proto
    if proto == IPPROTO_ICMP:
        return (pkt.icmp_type == 8 or pkt.icmp_type == 0) and pkt.icmp_code == 0
    return proto == IPPROTO_ICMPV6 and (pkt.icmp_type == 128 or pkt.icmp_type == 129) and pkt.icmp_code == 0


def _while_no_parser(st, scan):
    """A scan offer's scan for a UDP flow direction whose transaction rules wait for a
    parser (Engine._offer_scan): truthy -- hand the datagram to the engine -- once the flow
    has one, else the prefilter's answer."""
    return AnyPattern((), st) if scan is None else scan.watching(st)


def _rewritten(pkt: Packet, payload: bytes) -> bytes:
    """`pkt`'s frame with its TCP payload replaced by `payload` (same length) and the TCP
    checksum made right again."""
    frame = bytearray(pkt.frame)
    start = pkt.l4_off + ((frame[pkt.l4_off + 12] >> 4) << 2)
    frame[start:start + len(payload)] = payload
    fill_l4_checksum(frame, pkt.l3_off)
    return bytes(frame)
