"""The rule engine: an `Inspector` deciding frames with Suricata-language rules.

    engine = Engine(loader.load(paths).rules, config=config, mode="ips")
    result = engine.inspect(frame, FrameMeta(ts, iface))

Pure: no sockets, no clocks (time is `meta.ts` / `tick(now)`), no globals,
no logging per packet.  `inspect` never raises: an exception inside is
counted (`engine.errors`) and the frame follows `exception-policy`.

Per decoded packet (the tunnelled packet or rebuilt datagram before the packet
that carried it; a drop of the inner one drops the carrier uninspected): flow lookup; a flow
already dropped drops the packet (reason "flow"); a passed flow skips
detection; otherwise the candidate rules (`rules.prefilter`: header groups
plus one hyperscan scan for the fast patterns) are evaluated in Suricata's
signature order -- action (pass, drop, reject, alert), then flowbits (rules
that only set bits before rules that set and read, before rules that only
read), then priority, then load order -- applying flowbits set/unset/toggle as
each rule matches, so a bit set by one rule is seen by a later rule on the
same packet.

Verdict, as Suricata 7 behaves (checked against recorded Suricata decisions in
tests/replay/differential):
- the highest-ranked matching action decides; a matching pass suppresses the
  alerts of every other match on the packet (pass itself logs nothing);
- drop/reject drop the packet; alert rules matching alongside still log
  (action "allowed"), drop/reject rules log "blocked" (ips mode only);
- IP-only rules (header plus ip_proto/flowbits/metadata, no payload or packet
  keyword) are evaluated on the first packet of each flow direction only, as
  Suricata's IP-only signatures are;
- drop, reject and pass apply to the *flow* when the rule is IP-only or the
  match was on TCP payload (Suricata's stream match): later packets of that
  flow, both directions, are dropped (reason "flow") or pass without
  detection.  Other matches (packet keywords, UDP payload) act on the packet;
- threshold (limit/threshold/both, by_src/by_dst/by_rule/by_both) suppresses
  alerts but not the rule's action; detection_filter suppresses the match
  itself until the count is exceeded within the window.  Windows are packet
  times; state lives in the Engine.
"""
from __future__ import annotations

import struct
from operator import attrgetter
from typing import Any

from rules.api import FORWARD, FrameMeta, Inject, Result, Verdict
from rules.checksum import fill_l4_checksum, inet_checksum
from rules.decode import DecodeOptions, decode
from rules.defrag import Defragmenter
from rules.events import Alert, DecoderEvent, Drop, PacketInfo
from rules.flow import FlowTable
from rules.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, TH_ACK, TH_FIN, TH_RST, TH_SYN, Packet
from rules.prefilter import PORT_PROTOS, RuleIndex
from rules.rule import ACTION_RANK, Rule

MODES = ("ips", "tap", "ids")
_REJECT = frozenset(("reject", "rejectsrc", "rejectdst", "rejectboth"))
_FB_SET = frozenset(("set", "unset", "toggle"))
_order_key = attrgetter("order")
_SHORT_LOOP = 4       # up to this many short-pattern candidates: `bytes in` tests, else a short_db scan
# keywords that keep a rule "IP-only" (Suricata's SIGMATCH_IPONLY_COMPAT family plus pure metadata)
IPONLY_KEYWORDS = frozenset((
    "msg", "sid", "rev", "gid", "classtype", "priority", "reference", "metadata", "target",
    "ip_proto", "flowbits", "noalert", "threshold", "detection_filter",
))


class _Sig:
    """A rule as the engine runs it (Rule has fixed slots; engine data lives here)."""

    __slots__ = ("rule", "order", "pid", "fp_short", "rank", "ports", "fb_ops", "has_payload", "iponly", "flow_action")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.order = 0
        self.pid = -1
        self.fp_short = None          # (pattern, caseless, short id) of a 1-2 byte fast pattern (RuleIndex)
        self.rank = ACTION_RANK[rule.action]
        ports = rule.ip_protos is None or bool(rule.ip_protos & PORT_PROTOS)
        self.ports = ports
        self.fb_ops = tuple(op for op in rule.flowbits if op.cmd in _FB_SET)
        self.has_payload = rule.payload is not None
        # header-only rules: evaluated on the first packet of each flow direction, as Suricata's
        # IP-only signatures are, and their drop/pass holds for the whole flow
        self.iponly = (rule.payload is None and rule.flow_to_server is None
                       and all(name in IPONLY_KEYWORDS for name, _ in rule.options))
        # drop/reject/pass act on the flow for IP-only rules and for matches on TCP payload
        self.flow_action = self.iponly


def _flowbits_class(rule: Rule) -> int:
    sets = any(op.cmd in _FB_SET for op in rule.flowbits)
    reads = any(name == "flowbits" and getattr(spec, "cmd", "") in ("isset", "isnotset") for name, spec in rule.options)
    if sets and not reads:
        return 0
    if sets and reads:
        return 1
    if reads:
        return 2
    return 3


def signature_order(rules: list[Rule]) -> list[Rule]:
    """Suricata's evaluation order: action, flowbits, priority, then load order."""
    idx = {id(r): i for i, r in enumerate(rules)}
    return sorted(rules, key=lambda r: (-ACTION_RANK[r.action], _flowbits_class(r), r.priority, idx[id(r)]))


def _header_ok(s: _Sig, pkt: Packet) -> bool:
    """flow:to_server/to_client, then addresses and ports of the rule header (`<>`: either way round)."""
    r = s.rule
    fts = r.flow_to_server
    if fts is not None and (pkt.flow is None or pkt.to_server != fts):
        return False
    ipver, src, dst = pkt.ipver, pkt.src, pkt.dst
    ports = s.ports and pkt.proto in PORT_PROTOS
    if r.src.contains(ipver, src) and r.dst.contains(ipver, dst) and (
            not ports or (r.sport.contains(pkt.sport) and r.dport.contains(pkt.dport))):
        return True
    if r.direction == "->":
        return False
    return r.src.contains(ipver, dst) and r.dst.contains(ipver, src) and (
        not ports or (r.sport.contains(pkt.dport) and r.dport.contains(pkt.sport)))


def _header_rest(s: _Sig, pkt: Packet, fwd: bool, rev: bool) -> bool:
    """`_header_ok` once the addresses are known to match forward (`fwd`) and/or, for `<>`
    rules, reversed (`rev`): flow:to_server/to_client and the ports."""
    r = s.rule
    fts = r.flow_to_server
    if fts is not None and (pkt.flow is None or pkt.to_server != fts):
        return False
    if not (s.ports and pkt.proto in PORT_PROTOS):
        return True
    if fwd and r.sport.contains(pkt.sport) and r.dport.contains(pkt.dport):
        return True
    return rev and r.sport.contains(pkt.dport) and r.dport.contains(pkt.sport)


class _Decision:
    """What one frame's packets decided so far (filled by Engine._visit)."""

    __slots__ = ("verdict", "reason", "drop_sid", "drop_pkt", "events", "injects")

    def __init__(self) -> None:
        self.verdict = Verdict.FORWARD
        self.reason = ""
        self.drop_sid = 0
        self.drop_pkt = None
        self.events: list = []
        self.injects: list = []


def _info(pkt: Packet) -> PacketInfo:
    f = pkt.flow
    return PacketInfo(
        ts=pkt.ts, iface=pkt.iface, pcap_cnt=pkt.pcap_cnt, vlan=tuple(pkt.vlan), flow_id=f.flow_id if f is not None else 0,
        ipver=pkt.ipver, src=pkt.src, dst=pkt.dst, sport=pkt.sport, dport=pkt.dport, proto=pkt.proto,
        to_server=pkt.to_server if f is not None else None, length=pkt.length, ttl=pkt.ttl, ip_id=pkt.ip_id,
        tcp_flags=pkt.tcp_flags, icmp_type=pkt.icmp_type, icmp_code=pkt.icmp_code,
    )


class Engine:
    def __init__(self, rules, *, config: Any = None, mode: str = "ips", decoder_policy: str | None = None,
                 rules_failed: int = 0, midstream_policy: str | None = None,
                 decoder_events: bool = False) -> None:
        if mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, not {mode!r}")
        self.mode = mode
        self.config = config
        ordered = signature_order(list(rules))
        sigs = [_Sig(r) for r in ordered]
        for i, s in enumerate(sigs):
            s.order = i
        self.sigs = sigs
        self.index = RuleIndex(sigs)
        self.index.warm()
        self.opts = DecodeOptions.from_config(config) if config is not None else DecodeOptions()
        self.flows = FlowTable(config)
        self.defrag = Defragmenter()
        self.exception_policy = getattr(config, "exception_policy", "auto") or "auto"
        if decoder_policy is None:
            decoder_policy = getattr(getattr(config, "decoder", None), "policy", None) or "forward"
        self.decoder_policy = decoder_policy
        # decoder anomalies are always counted; as EVE events only on request (Suricata's
        # default suricata.yaml logs no decode anomalies either)
        self.decoder_events = decoder_events
        self.midstream_policy = self._midstream_policy(config, midstream_policy)
        self._thresh: dict[tuple, list] = {}       # (kind, gid, sid, key) -> [first_ts, count]
        self._hdr_cache: dict[int, dict] = {}       # flow_id -> {(to_server, src, sport): Engine._plain(...)}
        self._scan = self.index.pattern_db.scan
        self._scan_short = self.index.short_db.scan
        self._short_maps: dict[tuple, dict] = {}     # short-pattern candidates -> {short id: rules}
        self.c: dict[str, int] = {
            "packets": 0, "alerts": 0, "drops": 0, "engine.errors": 0, "detect.evaluated": 0,
            "detect.matched": 0, "decoder.packets_with_events": 0,
            "rules.loaded": len(sigs), "rules.failed": rules_failed,
        }
        self._cur: tuple = ()

    def _midstream_policy(self, config, given: str | None) -> str:
        """What happens to TCP packets of flows without a session (midstream, stream.midstream off).
        Suricata: stream.midstream-policy, else exception-policy; "auto" is drop-flow inline and
        ignore otherwise.  Without a config the engine is lenient (ignore)."""
        if given is None:
            if config is None:
                return "ignore"
            stream = getattr(config, "stream", None)
            if stream is not None and getattr(stream, "midstream", False):
                return "ignore"
            given = getattr(stream, "midstream_policy", None) or getattr(config, "exception_policy", "auto") or "auto"
        if given == "auto":
            return "drop-flow" if self.mode == "ips" else "ignore"
        return given

    # ------------------------------------------------------------------ Inspector
    def inspect(self, frame, meta: FrameMeta) -> Result:
        self._cur = ()
        try:
            return self._inspect(frame, meta)
        except Exception:
            self.c["engine.errors"] += 1
            return self._on_exception()

    def tick(self, now: float) -> tuple:
        try:
            self.defrag.expire(now)
            cache = self._hdr_cache
            for f in self.flows.expire(now):
                cache.pop(f.flow_id, None)
            if len(cache) > 4 * max(len(self.flows), 1024):     # evicted flows not yet reported: start over
                cache.clear()
            if len(self._thresh) > 4096:
                self._prune_thresholds(now)
        except Exception:
            self.c["engine.errors"] += 1
        return ()

    def stats(self) -> dict[str, int]:
        out = dict(self.c)
        out.update(self.flows.stats())
        out.update(self.defrag.stats())
        out.update(self.index.stats())
        return out

    # ------------------------------------------------------------------ internals
    def _count(self, key: str, n: int = 1) -> None:
        c = self.c
        c[key] = c.get(key, 0) + n

    def _on_exception(self) -> Result:
        policy = self.exception_policy
        if policy in ("drop-packet", "drop-flow"):
            self._count("drops")
            self._count(f"drops.policy:{policy}")
            if policy == "drop-flow":
                for p in self._cur:
                    f = getattr(p, "flow", None)
                    if f is not None and not f.dropped:
                        f.dropped = f"policy:{policy}"
            return Result(Verdict.DROP, reason=f"policy:{policy}")
        if policy == "pass-flow":
            for p in self._cur:
                f = getattr(p, "flow", None)
                if f is not None:
                    f.action_pass = True
        return FORWARD

    def _prune_thresholds(self, now: float) -> None:
        dead = [k for k, v in self._thresh.items() if now - v[0] > v[2]]
        for k in dead:
            del self._thresh[k]

    def _inspect(self, frame, meta: FrameMeta) -> Result:
        c = self.c
        c["packets"] += 1
        pkts = decode(frame, meta, self.opts)
        self._cur = pkts
        d = _Decision()
        kids: dict[int, list] = {}
        for p in pkts[1:]:
            kids.setdefault(id(p.outer), []).append(p)
        self._visit(pkts[0], kids, d)
        verdict, reason, drop_sid, drop_pkt = d.verdict, d.reason, d.drop_sid, d.drop_pkt
        events, injects = d.events, d.injects
        if verdict != Verdict.FORWARD:
            c["drops"] += 1
            self._count(f"drops.{reason}")
            if self.mode == "ips":
                events.append(Drop(_info(drop_pkt if drop_pkt is not None else pkts[0]), reason, drop_sid))
            if verdict == Verdict.REJECT and not injects:
                verdict = Verdict.DROP
        if not events and verdict == Verdict.FORWARD:
            return FORWARD
        return Result(verdict, tuple(events), reason, tuple(injects))

    def _visit(self, pkt: Packet, kids: dict, d: "_Decision") -> bool:
        """Inspect `pkt` after the packets decoded out of it; True when it is dropped.

        As Suricata runs the pseudo-packets a frame yields (the packet inside a
        GRE/VXLAN carrier, the datagram rebuilt from fragments) through
        detection before the packet that yielded them, and a drop of such a
        pseudo-packet drops its carrier, which is then not inspected (checked
        with suricata -r: no alert and no threshold count on the carrier)."""
        c = self.c
        tunnelled = kids.get(id(pkt), ())
        inner = list(tunnelled)
        if pkt.frag and pkt.ipver:
            # fragments are inspected as they are (IP-level rules) and, once a datagram
            # completes, the rebuilt datagram is inspected with the completing frame
            data = self.defrag.add(pkt)
            if data is not None:
                more = self.defrag.reassembled(data, pkt, self.opts)
                self._cur = self._cur + more
                for p in more[1:]:
                    kids.setdefault(id(p.outer), []).append(p)
                inner.append(more[0])
        if pkt.events:
            c["decoder.packets_with_events"] += 1
            for name in pkt.events:
                self._count(name)
            if self.decoder_events:
                info = _info(pkt)
                d.events.extend(DecoderEvent(info, name) for name in pkt.events)
            if self.decoder_policy == "drop" and d.verdict == Verdict.FORWARD:
                d.verdict, d.reason, d.drop_pkt = Verdict.DROP, "decoder", pkt
        for p in inner:
            if self._visit(p, kids, d):
                return True
        if not pkt.ipver:
            return False
        flow = self.flows.lookup(pkt)
        if flow is not None:
            if flow.dropped:
                if d.verdict == Verdict.FORWARD:
                    d.reason, d.drop_pkt = "flow", pkt
                d.verdict = max(d.verdict, Verdict.DROP)
                return True
            if flow.action_pass:
                return False
            if (pkt.proto == IPPROTO_TCP and self.midstream_policy != "ignore"
                    and not getattr(flow, "tcp_session", True)):
                # a TCP flow the stream engine does not track (picked up midstream with
                # stream.midstream off): Suricata's midstream exception policy decides
                pol = self.midstream_policy
                if pol in ("drop-flow", "drop-packet"):
                    if pol == "drop-flow":
                        flow.dropped = "policy:midstream"
                    if d.verdict == Verdict.FORWARD:
                        d.reason, d.drop_pkt = "policy:midstream", pkt
                    d.verdict = max(d.verdict, Verdict.DROP)
                    return True
                if pol == "pass-flow":
                    flow.action_pass = True
                    return False
                if pol == "pass-packet":
                    return False
        # a tunnel carrier is not flow-tracked by Suricata: its IP-only rules run every time
        v, sid = self._detect(pkt, None if tunnelled else flow, d.events, d.injects)
        if v == Verdict.FORWARD:
            return False
        if d.verdict == Verdict.FORWARD or d.reason != "rule":
            d.reason, d.drop_sid, d.drop_pkt = "rule", sid, pkt
        d.verdict = max(v, d.verdict)
        return True

    def _plain(self, pkt: Packet):
        """(header-checked plain candidates, number of buckets they came from, groups with patterns)."""
        groups = self.index.groups(pkt.proto, pkt.sport, pkt.dport)
        plain: list = []
        nsrc = 0
        hdr_ok = _header_ok
        for g in groups:
            pairs = g.plain_pairs
            hit = None if pairs is None else pairs.lookup(pkt.ipver, pkt.src, pkt.dst)
            if hit is not None:
                for rep, sigs, fwd, rev, free in hit:
                    if free or _header_rest(rep, pkt, fwd, rev):
                        nsrc += 1
                        plain.extend(sigs)
                continue
            idx = g.plain_idx
            for rep, sigs in (g.plain_hdr if idx is None else idx.buckets(pkt.ipver, pkt.src, pkt.dst)):
                if hdr_ok(rep, pkt):
                    nsrc += 1
                    plain.extend(sigs)
        if nsrc > 1:
            plain.sort(key=_order_key)
        # rules with a 1-2 byte fast pattern are candidates only when the payload holds it
        short = tuple(s for s in plain if s.fp_short is not None)
        if short:
            plain = [s for s in plain if s.fp_short is None]
            if len(short) > _SHORT_LOOP:          # many: one short_db scan, then id -> rules
                key = tuple(s.order for s in short)
                by_id = self._short_maps.get(key)
                if by_id is None:                 # shared by every flow with this candidate set
                    by_id = {}
                    for s in short:
                        by_id.setdefault(s.fp_short[2], []).append(s)
                    by_id = {k: tuple(v) for k, v in by_id.items()}
                    if len(self._short_maps) >= 4096:
                        self._short_maps.clear()
                    self._short_maps[key] = by_id
                short = by_id
        plain = tuple(plain)
        # IP-only rules run on the first packet of a flow direction only: the later packets
        # walk the candidates without them
        later = tuple(s for s in plain if not s.iponly)
        if len(later) == len(plain):
            later = plain
        return plain, nsrc, tuple(g for g in groups if g.by_pid), later, short

    def _detect(self, pkt: Packet, flow, events: list, injects: list) -> tuple[Verdict, int]:
        # everything decided by the header alone is the same for every packet of a flow
        # direction: computed once per (flow, direction) and cached until the flow ends
        if flow is not None:
            per_flow = self._hdr_cache.get(flow.flow_id)
            if per_flow is None:
                per_flow = self._hdr_cache[flow.flow_id] = {}
            # the orientation is part of the key: a late SYN may turn the flow round
            key = (pkt.to_server, pkt.src, pkt.sport)
            ent = per_flow.get(key)
            if ent is None:
                ent = per_flow[key] = self._plain(pkt)
        else:
            ent = self._plain(pkt)
        plain, nsrc, pid_groups, later, short = ent
        to_server = pkt.to_server
        first_in_dir = flow is None or (flow.pkts_toserver if to_server else flow.pkts_toclient) == 1
        # (skipped IP-only candidates still count as evaluated, as they always have)
        skipped = 0
        if not first_in_dir and later is not plain:
            skipped = len(plain) - len(later)
            plain = later
        payload = pkt.payload
        buf = bytes(payload) if len(payload) else b""
        cands = plain
        if short and buf:
            extra = []
            if type(short) is dict:
                for spid in short.keys() & self._scan_short(buf):
                    extra.extend(short[spid])
            else:
                low = None
                for s in short:
                    pat, nocase, _ = s.fp_short
                    if nocase:
                        if low is None:
                            low = buf.lower()
                        if pat in low:
                            extra.append(s)
                    elif pat in buf:
                        extra.append(s)
            if extra:
                cands = list(plain)
                cands.extend(extra)
                nsrc += 2                         # merged out of order: sorted below
        if pid_groups and buf:
            found = self._scan(buf)
            if found:
                if cands is plain:
                    cands = list(plain)
                hdr_ok = _header_ok
                for g in pid_groups:
                    pid_hdr = g.pid_hdr
                    # the group's pattern ids among those found (keys view & set: a C loop over `found`)
                    for pid in pid_hdr.keys() & found:
                        for rep, sigs in pid_hdr[pid]:
                            if hdr_ok(rep, pkt):
                                nsrc += 1
                                cands.extend(sigs)
        if not cands:
            if skipped:
                self.c["detect.evaluated"] += skipped
            return Verdict.FORWARD, 0
        if nsrc > 1 and cands is not plain:
            cands.sort(key=_order_key)
        c = self.c
        c["detect.evaluated"] += len(cands) + skipped
        matches = []
        for s in cands:
            if s.iponly and not first_in_dir:
                continue
            r = s.rule
            ok = True
            for chk in r.checks:
                if not chk(pkt):
                    ok = False
                    break
            if not ok:
                continue
            if s.has_payload and not r.payload.match(buf):
                continue
            # matched: post-match flowbits at once (later rules on this packet see them)
            if s.fb_ops and flow is not None:
                bits = flow.flowbits
                for op in s.fb_ops:
                    if op.cmd == "set":
                        bits.update(op.names)
                    elif op.cmd == "unset":
                        bits.difference_update(op.names)
                    else:
                        for n in op.names:
                            if n in bits:
                                bits.discard(n)
                            else:
                                bits.add(n)
            if r.detection_filter is not None and not self._threshold(r.detection_filter, r, pkt):
                continue
            matches.append(s)
        if not matches:
            return Verdict.FORWARD, 0
        c["detect.matched"] += len(matches)
        top = matches[0]                  # sorted by action rank first
        info = None
        if top.rank == ACTION_RANK["pass"]:
            if flow is not None and (top.flow_action or (pkt.proto == IPPROTO_TCP and top.has_payload)) \
                    and not flow.dropped:
                flow.action_pass = True
            self._count("detect.pass")
            return Verdict.FORWARD, 0
        verdict = Verdict.FORWARD
        sid = 0
        ips = self.mode == "ips"
        for s in matches:
            r = s.rule
            act = r.action
            acting = act == "drop" or act in _REJECT
            if acting:
                if act in _REJECT:
                    # drop outranks reject: a reject answers only when it decides the packet
                    if top.rank == s.rank and pkt.outer is None and not injects:
                        injects.extend(_reject_frames(pkt, act))
                    v = Verdict.REJECT if top.rank == s.rank else Verdict.DROP
                else:
                    v = Verdict.DROP
                if verdict == Verdict.FORWARD:
                    sid = r.sid
                verdict = max(verdict, v)
                if flow is not None and (s.flow_action or (pkt.proto == IPPROTO_TCP and s.has_payload)) \
                        and not flow.dropped and not flow.action_pass:
                    flow.dropped = "rule"
            if r.noalert:
                continue
            if r.threshold is not None and not self._threshold(r.threshold, r, pkt):
                self._count("detect.thresholded")
                continue
            if info is None:
                info = _info(pkt)
            c["alerts"] += 1
            events.append(Alert(info, "blocked" if acting and ips else "allowed", act, r.gid, r.sid, r.rev,
                                r.msg, r.category, r.priority))
        return verdict, sid

    def _threshold(self, t, r: Rule, pkt: Packet) -> bool:
        """True when the alert (or, for detection_filter, the match) goes through."""
        track = t.track
        if track == "by_src":
            key = (pkt.ipver, pkt.src)
        elif track == "by_dst":
            key = (pkt.ipver, pkt.dst)
        elif track == "by_both":
            key = (pkt.ipver, pkt.src, pkt.dst)
        else:
            key = ()
        k = (t.type, r.gid, r.sid, key)
        now = pkt.ts
        st = self._thresh.get(k)
        n = t.count
        kind = t.type
        if st is None or now - st[0] > t.seconds:
            self._thresh[k] = st = [now, 1, t.seconds]
        else:
            st[1] += 1
        cnt = st[1]
        if kind == "limit":
            return cnt <= n
        if kind == "threshold":
            if cnt >= n:
                st[1] = 0
                return True
            return False
        if kind == "both":
            return cnt == n
        # detection_filter ("df"): match once the count is exceeded in the window
        return cnt > n


# ---------------------------------------------------------------------- reject
_ETH = struct.Struct("!6s6sH")


def _l2(pkt: Packet, back: bool) -> bytes:
    f = pkt.frame
    dst, src = bytes(f[0:6]), bytes(f[6:12])
    tags = bytes(f[12:pkt.l3_off - 2]) if pkt.l3_off > 14 else b""
    eth_type = 0x0800 if pkt.ipver == 4 else 0x86DD
    if back:
        dst, src = src, dst
    return dst + src + tags + struct.pack("!H", eth_type)


def _ip(pkt: Packet, src: int, dst: int, proto: int, l4: bytes) -> bytes:
    if pkt.ipver == 4:
        hdr = bytearray(struct.pack("!BBHHHBBHII", 0x45, 0, 20 + len(l4), 0, 0x4000, 64, proto, 0, src, dst))
        struct.pack_into("!H", hdr, 10, inet_checksum(hdr))
        return bytes(hdr) + l4
    return struct.pack("!IHBB", 0x60000000, len(l4), proto, 64) + src.to_bytes(16, "big") + dst.to_bytes(16, "big") + l4


def _finish(l2: bytes, ip: bytes) -> bytes:
    out = bytearray(l2 + ip)
    fill_l4_checksum(out, len(l2))
    return bytes(out)


def _tcp_rst(pkt: Packet, back: bool) -> bytes:
    seglen = len(pkt.payload) + (1 if pkt.tcp_flags & TH_SYN else 0) + (1 if pkt.tcp_flags & TH_FIN else 0)
    if back:              # to the sender, as if from the receiver
        src, dst, sp, dp = pkt.dst, pkt.src, pkt.dport, pkt.sport
        seq = pkt.ack if pkt.tcp_flags & TH_ACK else 0
        ack = (pkt.seq + seglen) & 0xFFFFFFFF
    else:                 # to the receiver, as if from the sender
        src, dst, sp, dp = pkt.src, pkt.dst, pkt.sport, pkt.dport
        seq = (pkt.seq + seglen) & 0xFFFFFFFF
        ack = pkt.ack
    tcp = struct.pack("!HHIIBBHHH", sp, dp, seq, ack, 5 << 4, TH_RST | TH_ACK, 0, 0, 0)
    return _finish(_l2(pkt, back), _ip(pkt, src, dst, IPPROTO_TCP, tcp))


def _icmp_unreach(pkt: Packet, back: bool) -> bytes:
    f = pkt.frame
    if back:
        src, dst = pkt.dst, pkt.src
    else:
        src, dst = pkt.src, pkt.dst
    port = pkt.proto == IPPROTO_UDP
    if pkt.ipver == 4:
        quote = bytes(f[pkt.l3_off:min(len(f), pkt.l4_off + 8)])
        body = struct.pack("!BBHI", 3, 3 if port else 13, 0, 0) + quote
        proto = IPPROTO_ICMP
    else:
        quote = bytes(f[pkt.l3_off:min(len(f), pkt.l3_off + 1232)])
        body = struct.pack("!BBHI", 1, 4 if port else 1, 0, 0) + quote
        proto = IPPROTO_ICMPV6
    return _finish(_l2(pkt, back), _ip(pkt, src, dst, proto, body))


def _reject_frames(pkt: Packet, action: str) -> list[Inject]:
    """Inject frames for a reject: TCP RST, or ICMP unreachable for anything else.
    Never answers an RST or an ICMP error."""
    if pkt.ipver not in (4, 6) or pkt.frag:
        return []
    if pkt.proto == IPPROTO_TCP:
        if pkt.tcp_flags & TH_RST:
            return []
        make = _tcp_rst
    else:
        if pkt.proto in (IPPROTO_ICMP, IPPROTO_ICMPV6) and not (pkt.icmp_type in (0, 8, 128, 129) or pkt.icmp_type < 0):
            return []
        make = _icmp_unreach
    out = []
    if action in ("reject", "rejectsrc", "rejectboth"):
        out.append(Inject(make(pkt, True), back=True))
    if action in ("rejectdst", "rejectboth"):
        out.append(Inject(make(pkt, False), back=False))
    return out


# ---------------------------------------------------------------------- factory
def mode_of(config) -> str:
    """ips when any interface is inline, tap when any taps, else ids."""
    modes = {getattr(i, "copy_mode", None) for i in getattr(config, "af_packet", ())}
    if "ips" in modes or not modes:
        return "ips"
    if "tap" in modes:
        return "tap"
    return "ids"


def load_rules(config, paths=None, *, strict: bool = False):
    """Rule files of `config` (or `paths`) through the loader: LoadResult."""
    from conf.validate import rule_path
    from rules import loader

    if paths is None:
        paths = [rule_path(config, p) for p in config.rule_files]
    return loader.load(list(paths), config=config, strict=strict)


def build(config, *, mode: str | None = None, paths=None) -> Engine:
    """The bridge's factory: load the configured rule files (errors logged once),
    build an Engine with what loaded."""
    result = load_rules(config, paths)
    errors = list(getattr(result, "errors", ()) or ())
    if errors:
        import structlog

        log = structlog.get_logger("rules")
        unsupported = dict(getattr(result, "unsupported", {}) or {})
        log.warning("rules_load_errors", failed=len(errors), loaded=len(result.rules),
                    first=[str(e) for e in errors[:5]], unsupported=dict(sorted(unsupported.items())[:20]))
    return Engine(result.rules, config=config, mode=mode or mode_of(config), rules_failed=len(errors))
