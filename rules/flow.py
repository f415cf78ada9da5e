"""Flow table: symmetric flow lookup, direction, TCP session state, timeouts.

Sans-I/O: time comes only from packet timestamps (`pkt.ts`) and from the `now`
passed to `expire(now)` (the engine calls it from `Inspector.tick`).  No
clocks, no randomness: flow ids derive from the key and the first timestamp,
so a replay gives the same ids every time.

Semantics follow Suricata 7 (behaviour, not code):
- Direction: the side that sent the first packet is the client, except that a
  TCP SYN+ACK seen first makes its *receiver* the client (the SYN was missed).
- TCP: SYN -> syn_sent, SYN+ACK -> syn_recv, ACK from the client ->
  established; a FIN -> closing, FINs from both sides or an RST -> closed.
  `flow.established` (the property used by `flow:established`) stays true
  through closing/closed once the handshake completed, as Suricata keeps
  FLOW_PKT_ESTABLISHED for the FIN-WAIT/CLOSE-WAIT states.
- Midstream (`stream.midstream`): off (the default) -> a TCP flow whose first
  packet is not a SYN gets no session and never becomes established, so
  `flow:established` rules never match it; a later SYN starts the session.  On
  -> a first packet with ACK (no SYN) is picked up as established at once, its
  sender taken as the client (Suricata does not guess from ports); a first
  SYN+ACK is picked up in syn_recv with its receiver as the client.
- `stream.async-oneside`: the client's ACK completes the session from
  syn_sent even when the SYN+ACK was never seen (one direction routed around),
  and a first SYN+ACK is picked up as with midstream.
- `flow.established` is what `flow:established` must read (not `state`): it
  turns true from the packet *after* the one completing the handshake (or the
  pickup), and for UDP/ICMP on the first packet of the second direction --
  checked packet by packet against Suricata 7.0.10 on crafted pcaps.
- UDP, ICMP and other IP protocols: established once packets went both ways.
- ICMP: keyed on the type and its counterpart (echo request/reply share a
  flow whatever the echo id; `cli_port`/`srv_port` hold those types).  An
  ICMPv4 destination unreachable joins the flow of the UDP/TCP packet it quotes
  if that flow exists (not counted, no state change); other ICMPv4 errors get
  no flow.  ICMPv6 errors are ordinary ICMPv6 flows (Suricata 7 behaviour).
- IP fragments get no flow (None), as in Suricata; the datagram rebuilt by
  `rules.defrag.Defragmenter` does.
- A TCP packet whose checksum the decoder found wrong (`csum_ok` False, only
  when checksum validation is on) is counted but does not move the session
  state, as Suricata's stream engine skips it.
- A SYN on a closed TCP flow starts a new flow (port reuse): the old one ends.
- Timeouts per protocol and state are Suricata's `flow-timeouts` defaults (a
  flow decided by a bypass -- the `bypass` keyword, stream.bypass -- takes the
  `bypassed` timeout instead, as Suricata's bypassed state; `touch` moves a
  flow on for the frames the data plane forwarded without a lookup);
  `flow.memcap` (bytes) allows `FlowSettings.max_flows` flows (memcap over
  the measured cost of one, `rules.settings.FLOW_BYTES`).  At the memcap the
  least recently active flow
  is evicted and the table enters emergency mode (emergency timeouts) until
  `expire` brings it under (100 - emergency_recovery)% of the memcap.

The stream stage (rules.stream) keeps a TCP flow's reassembled directions in
`flow.tcp` once the session starts (`flow.tcp_session` true); `expire` returns
the flows whose state it must release (and, in IDS mode, inspect a last time).
"""
from __future__ import annotations

import struct
from collections import OrderedDict

from rules.packet import (
    IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_RST, TH_SYN, Flow, Packet,
)
from rules.settings import DEFAULT_TIMEOUTS, FlowSettings, StreamSettings

_IPPROTO_SCTP = 132
_u32x2 = struct.Struct("!II").unpack_from
_u16x2 = struct.Struct("!HH").unpack_from
# ICMP flows are keyed on (type, counterpart type) like Suricata, so a request and
# its reply share a flow and the echo id does not split it; 255 = no counterpart.
_ICMP4_PAIR = {8: 0, 0: 8, 13: 14, 14: 13, 15: 16, 16: 15, 17: 18, 18: 17, 10: 9, 9: 10}
_ICMP6_PAIR = {128: 129, 129: 128, 133: 134, 134: 133, 135: 136, 136: 135, 139: 140, 140: 139,
               144: 145, 145: 144, 146: 147, 147: 146, 130: 131, 131: 130}
_ICMP4_ERRORS = frozenset((3, 4, 5, 11, 12))
_FLOW_ID_MASK = (1 << 51) - 1
_MIX = 0x9E3779B97F4A7C15          # spreads the hash's low bits over the id's 51
# flow decisions (Flow.decided) that put a flow in Suricata's "bypassed" state, timed out by
# flow-timeouts.<proto>.bypassed: the bypass keyword and stream.bypass
_BYPASSED = frozenset(("bypass", "stream-depth"))


class TrackedFlow(Flow):
    """A `Flow` with the table's own bookkeeping (still a `rules.packet.Flow`)."""

    __slots__ = ("tcp_session", "est_after", "fin_toserver", "fin_toclient", "midstream", "timeouts")

    def __init__(self, key, flow_id: int, ts: float) -> None:
        Flow.__init__(self, key, flow_id, ts)
        self.tcp_session = False      # TCP only: the stream engine tracks this session
        self.est_after = -1           # packet count after which packets are "established"; -1 never
        self.fin_toserver = False
        self.fin_toclient = False
        self.midstream = False        # picked up without seeing the SYN
        self.timeouts = DEFAULT_TIMEOUTS["default"]

    @property
    def established(self) -> bool:
        """What `flow:established` sees for the packet just looked up.

        True from the packet *after* the one that completed the TCP handshake
        (or the midstream pickup) on, through closing and closed, as Suricata
        flags packets; for UDP/ICMP from the first packet of the second
        direction on."""
        e = self.est_after
        return e >= 0 and self.pkts_toserver + self.pkts_toclient > e


def flow_id_for(key: tuple, ts: float) -> int:
    """Positive 51-bit id (fits a JSON double exactly), from the key and first timestamp.

    Python's tuple hash over ints only (the key holds no str): the same in every process
    and run, whatever PYTHONHASHSEED, at a quarter of a cryptographic hash's cost (about 1 against
    4.3 us per new flow)."""
    h = hash((key, round(ts * 1_000_000))) * _MIX
    return ((h ^ (h >> 29)) & _FLOW_ID_MASK) or 1


def flow_key(ipver: int, proto: int, src: int, sp: int, dst: int, dp: int, vlan: tuple) -> tuple:
    """The flow table's key: the same for both directions of a flow (lower endpoint first)."""
    if src < dst or (src == dst and sp <= dp):
        return (ipver, proto, src, sp, dst, dp, vlan)
    return (ipver, proto, dst, dp, src, sp, vlan)


def _account(flow: TrackedFlow, pkt: Packet, to_server: bool) -> None:
    """A looked-up packet joins its flow: its direction, the flow's last-seen time and the
    direction's packet and byte counters."""
    pkt.flow = flow
    pkt.to_server = to_server
    if pkt.ts > flow.last_ts:
        flow.last_ts = pkt.ts
    if to_server:
        flow.pkts_toserver += 1
        flow.bytes_toserver += pkt.length
    else:
        flow.pkts_toclient += 1
        flow.bytes_toclient += pkt.length


class FlowTable:
    def __init__(self, settings: FlowSettings = FlowSettings(), stream: StreamSettings = StreamSettings()) -> None:  # noqa: B008
        self.settings = s = settings
        self.max_flows = s.max_flows
        self.midstream = stream.midstream
        self.async_oneside = stream.async_oneside
        self._flows: OrderedDict[tuple, TrackedFlow] = OrderedDict()   # least recently active first
        # evicted / replaced since the last take_ended() or expire(); the engine takes them
        # as soon as there are any, so their state goes before the next tick
        self.ended: list[TrackedFlow] = []
        self._to_tcp = s.timeouts.get("tcp", DEFAULT_TIMEOUTS["tcp"])
        self._to_udp = s.timeouts.get("udp", DEFAULT_TIMEOUTS["udp"])
        self._to_icmp = s.timeouts.get("icmp", DEFAULT_TIMEOUTS["icmp"])
        self._to_default = s.timeouts.get("default", DEFAULT_TIMEOUTS["default"])
        self.emergency = False
        self.created = 0
        self.expired = 0
        self.evicted = 0
        self.memcap_hits = 0
        self.midstream_pickups = 0
        self.tcp_reuse = 0
        self.emergency_entered = 0

    def __len__(self) -> int:
        return len(self._flows)

    # ------------------------------------------------------------------ lookup
    def lookup(self, pkt: Packet) -> TrackedFlow | None:
        """Find or create the flow of `pkt`; sets `pkt.flow` and `pkt.to_server`.
        Non-IP packets get None."""
        ipver = pkt.ipver
        if not ipver or pkt.frag:
            return None             # non-IP, or a fragment (no flow in Suricata either)
        proto = pkt.proto
        src = pkt.src
        dst = pkt.dst
        if proto == IPPROTO_TCP or proto == IPPROTO_UDP or proto == _IPPROTO_SCTP:
            sp = pkt.sport
            dp = pkt.dport
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            itype = pkt.icmp_type
            if itype < 0:
                return None         # truncated ICMP header
            if proto == IPPROTO_ICMP:
                if itype in _ICMP4_ERRORS:
                    return self._icmp_error(pkt)
                sp, dp = itype, _ICMP4_PAIR.get(itype, 255)
            else:
                sp, dp = itype, _ICMP6_PAIR.get(itype, 255)
        else:
            sp = dp = 0
        key = flow_key(ipver, proto, src, sp, dst, dp, pkt.vlan)
        flows = self._flows
        flow = flows.get(key)
        if flow is None:
            flow = self._create(key, pkt, src, sp, dst, dp)
        else:
            flows.move_to_end(key)
            if (proto == IPPROTO_TCP and flow.state == "closed"
                    and pkt.tcp_flags & (TH_SYN | TH_ACK) == TH_SYN):
                del flows[key]          # a new connection on the same ports
                self.ended.append(flow)
                self.tcp_reuse += 1
                flow = self._create(key, pkt, src, sp, dst, dp)
        to_server = flow.cli == src and flow.cli_port == sp
        _account(flow, pkt, to_server)
        if proto == IPPROTO_TCP:
            if pkt.csum_ok is not False:     # Suricata's stream ignores bad-checksum segments
                self._tcp_update(flow, pkt, to_server)
        elif flow.state == "new" and flow.pkts_toserver and flow.pkts_toclient:
            flow.state = "established"
            flow.est_after = flow.pkts_toserver + flow.pkts_toclient - 1     # this packet included
        return flow

    def table(self) -> OrderedDict:
        """The table itself, least recently active first, for the compiled lanes
        (rules.engine.Engine.front), which find and move a flow as `find` and
        `established_seen` do."""
        return self._flows

    def find(self, pkt: Packet):
        """The engine's lanes (rules.engine.Engine._lean_tcp, _lean_udp): (key, flow) of the
        TCP or UDP packet, or ICMP echo request or reply, `pkt` when its flow exists, else
        None.  Nothing changes: `established_seen` does what `lookup` would once a lane
        takes the packet."""
        proto = pkt.proto
        if proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:     # an echo flow's "ports": its types
            itype = pkt.icmp_type
            pair = (_ICMP4_PAIR if proto == IPPROTO_ICMP else _ICMP6_PAIR).get(itype, 255)
            key = flow_key(pkt.ipver, proto, pkt.src, itype, pkt.dst, pair, pkt.vlan)
        else:
            key = flow_key(pkt.ipver, proto, pkt.src, pkt.sport, pkt.dst, pkt.dport, pkt.vlan)
        flow = self._flows.get(key)
        return None if flow is None else (key, flow)

    def established_seen(self, key: tuple, flow: TrackedFlow, pkt: Packet, to_server: bool) -> None:
        """`lookup` of a packet `find` found, when its flow's state cannot change: a TCP
        segment with no SYN, FIN or RST of an established flow, or a UDP datagram of a
        direction that had one before (a UDP flow is established at the first datagram of
        its second direction).  The flow is the most recently active, and counts it."""
        self._flows.move_to_end(key)
        _account(flow, pkt, to_server)

    def _icmp_error(self, pkt: Packet) -> TrackedFlow | None:
        """ICMPv4 destination unreachable joins the flow of the packet it quotes,
        when that flow exists and the quote holds the whole UDP (8) or TCP (20)
        header; other ICMPv4 errors, and unmatched ones, get no flow (Suricata 7).
        The error is not counted in the flow and does not change its state."""
        if pkt.icmp_type != 3:
            return None
        q = pkt.payload
        n = len(q)
        if n < 20 or q[0] >> 4 != 4:
            return None
        hl = (q[0] & 0x0F) << 2
        proto = q[9]
        if hl < 20 or n < hl + (20 if proto == IPPROTO_TCP else 8) or proto not in (IPPROTO_TCP, IPPROTO_UDP):
            return None
        src, dst = _u32x2(q, 12)
        sp, dp = _u16x2(q, hl)
        flow = self._flows.get(flow_key(4, proto, src, sp, dst, dp, pkt.vlan))
        if flow is not None:
            pkt.flow = flow
            pkt.to_server = flow.cli == pkt.src
        return flow

    def _create(self, key, pkt: Packet, src, sp, dst, dp) -> TrackedFlow:
        flows = self._flows
        if len(flows) >= self.max_flows:
            self.memcap_hits += 1
            if not self.emergency:
                self.emergency = True
                self.emergency_entered += 1
            _, old = flows.popitem(last=False)        # least recently active
            self.ended.append(old)
            self.evicted += 1
        flow = TrackedFlow(key, flow_id_for(key, pkt.ts), pkt.ts)
        proto = pkt.proto
        flow.ipver = pkt.ipver
        flow.proto = proto
        flow.vlan = pkt.vlan
        if (proto == IPPROTO_TCP and (self.midstream or self.async_oneside)
                and pkt.tcp_flags & (TH_SYN | TH_ACK | TH_RST) == (TH_SYN | TH_ACK)):
            # picked up at the SYN+ACK: its receiver sent the SYN.  Without midstream or
            # async-oneside there is no session and Suricata keeps the first sender as client.
            src, sp, dst, dp = dst, dp, src, sp
        flow.cli, flow.cli_port, flow.srv, flow.srv_port = src, sp, dst, dp
        if proto == IPPROTO_TCP:
            flow.timeouts = self._to_tcp
        elif proto == IPPROTO_UDP:
            flow.timeouts = self._to_udp
        elif proto == IPPROTO_ICMP or proto == IPPROTO_ICMPV6:
            flow.timeouts = self._to_icmp
        else:
            flow.timeouts = self._to_default
        flows[key] = flow
        self.created += 1
        return flow

    def _tcp_update(self, flow: TrackedFlow, pkt: Packet, to_server: bool) -> None:
        flags = pkt.tcp_flags
        state = flow.state
        if not flow.tcp_session:
            syn_ack = flags & (TH_SYN | TH_ACK)
            if syn_ack == TH_SYN and not flags & TH_RST:
                flow.tcp_session = True
                flow.state = "syn_sent"
                if not to_server:       # the SYN came from the side we had as server
                    flow.cli, flow.srv = flow.srv, flow.cli
                    flow.cli_port, flow.srv_port = flow.srv_port, flow.cli_port
                    pkt.to_server = True
                    flow.pkts_toserver, flow.pkts_toclient = flow.pkts_toclient, flow.pkts_toserver
                    flow.bytes_toserver, flow.bytes_toclient = flow.bytes_toclient, flow.bytes_toserver
            elif syn_ack & TH_ACK and not flags & TH_RST and (
                    self.midstream or (syn_ack == TH_SYN | TH_ACK and self.async_oneside)):
                flow.tcp_session = True
                flow.midstream = True
                self.midstream_pickups += 1
                if syn_ack == TH_SYN | TH_ACK:
                    flow.state = "syn_recv"
                else:
                    flow.state = "established"
                    flow.est_after = flow.pkts_toserver + flow.pkts_toclient          # from the next packet
                    if flags & TH_FIN:
                        flow.state = "closing"
                        if to_server:
                            flow.fin_toserver = True
                        else:
                            flow.fin_toclient = True
            return
        if flags & TH_RST:
            flow.state = "closed"
            return
        if state == "syn_sent":
            if flags & (TH_SYN | TH_ACK) == TH_SYN | TH_ACK and not to_server:
                flow.state = "syn_recv"
            elif (flags & (TH_SYN | TH_ACK) == TH_ACK and to_server and self.async_oneside):
                flow.state = "established"
                flow.est_after = flow.pkts_toserver + flow.pkts_toclient          # from the next packet
        elif state == "syn_recv":
            if flags & (TH_SYN | TH_ACK) == TH_ACK and to_server:
                flow.state = "established"
                flow.est_after = flow.pkts_toserver + flow.pkts_toclient          # from the next packet
                if flags & TH_FIN:
                    flow.fin_toserver = True
                    flow.state = "closing"
        elif state == "established" or state == "closing":
            if flags & TH_FIN:
                if to_server:
                    flow.fin_toserver = True
                else:
                    flow.fin_toclient = True
                flow.state = "closed" if flow.fin_toserver and flow.fin_toclient else "closing"

    def touch(self, flow: TrackedFlow, ts: float, n: int = 1) -> None:
        """`n` frames of `flow` went by without a lookup (flow bypass, rules.api.Bypass;
        the flow's packet counters already include them): it was active at `ts`, and a
        flow other than TCP whose second direction only went by this way is established
        from now on, as a lookup of those frames would have made it."""
        if ts > flow.last_ts:
            flow.last_ts = ts
        if self._flows.get(flow.key) is flow:
            self._flows.move_to_end(flow.key)
        if flow.state == "new" and flow.proto != IPPROTO_TCP and flow.pkts_toserver and flow.pkts_toclient:
            flow.state = "established"
            flow.est_after = flow.pkts_toserver + flow.pkts_toclient - n

    # ------------------------------------------------------------------ time
    def timeout_of(self, flow: TrackedFlow) -> float:
        t = flow.timeouts
        s = flow.state
        if flow.decided in _BYPASSED:        # Suricata's bypassed state has its own timeout
            return t.emergency_bypassed if self.emergency else t.bypassed
        if self.emergency:
            if s == "established" or s == "closing":
                return t.emergency_established
            return t.emergency_closed if s == "closed" else t.emergency_new
        if s == "established" or s == "closing":
            return t.established
        return t.closed if s == "closed" else t.new

    def _min_timeout(self) -> float:
        vals = []
        for t in (self._to_tcp, self._to_udp, self._to_icmp, self._to_default):
            if self.emergency:
                vals += [t.emergency_new, t.emergency_established, t.emergency_bypassed]
            else:
                vals += [t.new, t.established, t.bypassed]
        tcp = self._to_tcp
        vals.append(tcp.emergency_closed if self.emergency else tcp.closed)
        return min(vals)

    def expire(self, now: float) -> list[TrackedFlow]:
        """Remove and return flows idle longer than their state's timeout at
        packet time `now`, plus flows evicted or replaced since the last call."""
        ended = self.ended
        self.ended = []
        flows = self._flows
        floor = self._min_timeout()
        dead = []
        for key, flow in flows.items():         # least recently active first
            idle = now - flow.last_ts
            if idle > self.timeout_of(flow):
                dead.append(key)
            elif idle <= floor:
                break                           # everything after is at least as fresh
        for key in dead:
            ended.append(flows.pop(key))
        self.expired += len(dead)
        if self.emergency and len(flows) <= self.max_flows * (100 - self.settings.emergency_recovery) // 100:
            self.emergency = False
        return ended

    def take_ended(self) -> list[TrackedFlow]:
        """Remove and return the flows evicted (at the memcap) or replaced (TCP port reuse)
        since the last call or `expire`."""
        ended = self.ended
        self.ended = []
        return ended

    def all(self) -> list[TrackedFlow]:
        """Every flow in the table (a rule reload walks them)."""
        return list(self._flows.values())

    def drain(self) -> list[TrackedFlow]:
        """Remove and return every flow (the input ended)."""
        ended = self.ended + list(self._flows.values())
        self.ended = []
        self._flows.clear()
        return ended

    def stats(self) -> dict[str, int]:
        return {
            "flow.created": self.created,
            "flow.active": len(self._flows),
            "flow.expired": self.expired,
            "flow.evicted": self.evicted,
            "flow.memcap_hits": self.memcap_hits,
            "flow.midstream_pickups": self.midstream_pickups,
            "flow.tcp_reuse": self.tcp_reuse,
            "flow.emergency_entered": self.emergency_entered,
            "flow.emergency": int(self.emergency),
        }
