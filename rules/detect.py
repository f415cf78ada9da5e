"""The detect stage: which rules match a packet, in Suricata's signature order.

    detector = Detector(rules)
    matches = detector.run(pkt, flow, buf, thresholds)

`run` returns the matching signatures, highest-ranked first; it decides
nothing about the packet (that is `rules.verdict`).  What it does:

1. Candidates (`rules.prefilter`): the header groups of the packet's
   protocol and ports, plus one hyperscan scan of the inspected buffer for
   the fast patterns.  Everything decided by the header alone is computed
   once per flow direction and cached until the flow ends.
2. Evaluation in signature order -- action (pass, drop, reject, alert),
   then flowbits (rules that only set bits before rules that set and read,
   before rules that only read), then flowint, host bits and IP-pair bits use
   (rules.keywords._state.order_key), then priority, then load order --
   applying flowbits set/unset/toggle and the other post-match operations
   (xbits, flowint: `Sig.post`) as each rule matches, so a bit set by one rule
   is seen by a later rule on the same packet.  The conditions on that state
   (`Sig.reads`) are tested after the packet checks, before the payload.
3. IP-only rules (header plus IP-only keywords, `Rule.iponly`) run on the
   first packet of each flow direction only, as Suricata's IP-only
   signatures do; detection_filter suppresses a match until its count is
   exceeded in its window.  Suricata's IP-only engine runs before the other
   rules of the packet: when an IP-only rule sets an xbit, the IP-only
   candidates are evaluated first (checked with suricata -r: an IP-only xbits
   set is seen by a payload rule's isset on the same packet), the matches
   still returned in signature order.

The buffer is what the payload keywords inspect: the packet payload, or for a
TCP packet the stream window the stream stage hands over (`rules.stream`).
"""
from __future__ import annotations

from bisect import bisect_right
from operator import attrgetter

from rules.addr import AddrSet
from rules.addr import PortSet as IntervalPorts
from rules.keywords._state import StateOp, VarState, order_key
from rules.packet import IPPROTO_ICMP, IPPROTO_ICMPV6, Packet
from rules.payload import Pcre
from rules.prefilter import PORT_PROTOS, AnyPattern, PatternDB, RuleIndex
from rules.rule import ACTION_RANK, Rule
from rules.thresholds import Thresholds

_FB_SET = frozenset(("set", "unset", "toggle"))
_order_key = attrgetter("order")
_SHORT_LOOP = 4       # up to this many short-pattern candidates: `bytes in` tests, else their database
_SHORT_IN_MAX = 256   # ... and `bytes in` tests only in a buffer up to this long
_SHORT_MAPS_MAX = 4096
_PLAIN_MAX = 16384    # header entries shared across flows (Detector._plain), cleared when full


# What a TCP rule's payload keywords inspect (Suricata's signature types): the packet
# payload only; the stream (or the packet when it was not taken into the stream); the
# stream, then the packet payload when the stream does not match.
PKT, STREAM, PKT_STREAM = 0, 1, 2


_KINDS = {"packet": PKT, "stream": STREAM, "both": PKT_STREAM, "": STREAM}


class Sig:
    """A rule as the detect stage runs it (Rule has fixed slots; engine data lives here)."""

    __slots__ = ("rule", "order", "pid", "fp_short", "rank", "ports", "fb_ops", "has_payload", "iponly",
                 "kind", "only_stream", "reads", "post")

    def __init__(self, rule: Rule) -> None:
        self.rule = rule
        self.order = 0
        self.pid = -1
        self.fp_short = None          # (pattern, caseless, short id, start, end) of a 1-2 byte fast pattern (RuleIndex)
        self.rank = ACTION_RANK[rule.action]
        self.ports = rule.ip_protos is None or bool(rule.ip_protos & PORT_PROTOS)
        self.fb_ops = tuple(op for op in rule.flowbits if op.cmd in _FB_SET)
        self.has_payload = rule.payload is not None
        self.iponly = rule.iponly
        self.kind = _KINDS[rule.require]
        self.only_stream = rule.only_stream      # flow:only_stream: the payload must match on the stream
        ops = state_ops(rule)
        self.reads = tuple(op for op in ops if op.read)       # xbits isset, flowint ==, ... (VarState)
        self.post = tuple(op for op in ops if not op.read)    # xbits set, flowint +, ...: after a match


def state_ops(rule: Rule) -> list:
    """The rule's xbits / flowint operations, in rule order (rules.keywords._state)."""
    return [spec for _kw, spec in rule.options if isinstance(spec, StateOp)]


def reads_ok(s: Sig, pkt: Packet, flow, state: VarState) -> bool:
    for op in s.reads:
        if not op.test(pkt, flow, state):
            return False
    return True


def post_match(s: Sig, pkt: Packet, flow, state: VarState) -> None:
    """A signature matched: its flowbits, xbits and flowint operations, at once."""
    if s.fb_ops and flow is not None:
        _apply_flowbits(s, flow.flowbits)
    for op in s.post:
        op.apply(pkt, flow, state)


def _iponly_first_key(s: Sig) -> tuple:
    return (not s.iponly, s.order)


def signature_order(rules: list[Rule]) -> list[Rule]:
    """Suricata's evaluation order: action, flowbits, flowint, host bits, IP-pair bits (each
    highest `order_key` value first), priority, then load order."""
    idx = {id(r): i for i, r in enumerate(rules)}

    def key(r: Rule) -> tuple:
        fi, host, pair = order_key(state_ops(r))
        return (-ACTION_RANK[r.action], r.flowbits_class, -fi, -host, -pair, r.priority, idx[id(r)])
    return sorted(rules, key=key)


def header_ok(s: Sig, pkt: Packet) -> bool:
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


def header_rest(s: Sig, pkt: Packet, fwd: bool, rev: bool) -> bool:
    """`header_ok` once the addresses are known to match forward (`fwd`) and/or, for `<>`
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


def _apply_flowbits(s: Sig, bits: set) -> None:
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


def _header_bounds(sigs) -> tuple[list[int], list[int], list[int]] | None:
    """The sorted edges of every port interval and every IPv4 and IPv6 address interval of
    the rules (each interval's first value and the one after its last): two ports (two
    addresses) between the same edges are in exactly the same sets of every rule, so every
    header check answers the same for them.  None when a rule's port or address set is not
    the parser's interval set (then nothing is shared)."""
    ports, v4, v6 = {0}, {0}, {0}

    def add(edges: set, intervals) -> None:
        for lo, hi in intervals:
            edges.add(lo)
            edges.add(hi + 1)

    for s in sigs:
        r = s.rule
        for ps in (r.sport, r.dport):
            if not isinstance(ps, IntervalPorts):
                return None
            add(ports, ps.iv)
        for a in (r.src, r.dst):
            if not isinstance(a, AddrSet):
                return None
            add(v4, a.v4)
            add(v6, a.v6)
    return sorted(ports), sorted(v4), sorted(v6)


def _pcre_items(chain) -> list:
    """The pcre items of a payload chain and of its sticky-buffer sub-chains."""
    out = [it for it in chain.items if isinstance(it, Pcre)]
    for _name, _extract, sub in chain.buffers:
        out += _pcre_items(sub)
    return out


_NEUTRAL = ("alert", "pass")          # actions that never make a verdict other than forward


_ALL_FLAGS = b"\xff" * 32           # a plain candidate without `flags`: every packet


def _flags_gate(later: tuple) -> bytes:
    """The flags prefilter of a flow direction's later plain candidates (rules without a
    fast pattern), a 32-byte bitmap: bit f (byte f >> 3, bit f & 7) set when one of them
    could match a packet with TCP flags byte f (`_flags_may_match`; rules/_hotpath.c reads it
    the same way).  A rule whose `flags` refuses them cannot, whatever else it tests (its
    checks all have to pass), so a pure ACK need not wake a `flags:S` rule."""
    m = 0
    for s in later:
        fm = s.rule.tcp_flags
        if fm is None:
            return _ALL_FLAGS
        m |= fm
    return m.to_bytes(32, "little")


def _flags_may_match(gate: bytes, flags: int) -> bool:
    """Could a plain candidate of the entry whose flags prefilter is `gate` match flags `flags`?"""
    return bool(gate[flags >> 3] >> (flags & 7) & 1)


def _may_change_verdict(s: Sig) -> bool:
    """Can a match of `s` make a packet's verdict anything but forward?  Its action, or the
    action a threshold.config rate_filter switches it to (alert and pass rules only log,
    or pass the flow)."""
    r = s.rule
    t = r.threshold
    return r.action not in _NEUTRAL or (t is not None and t.type == "rate" and t.new_action not in _NEUTRAL)


def _icmp_allows(s: Sig, itype: int, icode: int) -> bool:
    """Can `s` match an ICMP packet of this type and code, as far as its itype and icode
    checks say (rules.keywords.icmp tags them with the field and the test)?"""
    for chk in s.rule.checks:
        field = getattr(chk, "icmp_field", None)
        if field is not None and not field[1](itype if field[0] == "icmp_type" else icode):
            return False
    return True


class Detector:
    """Candidate selection and matching over one rule set.  Holds the prefilter databases
    (built in the process that uses them) and the per-flow header cache."""

    # (slots: the compiled lanes read these on every frame, by offset; everything else is
    # in __dict__, and a pickle carries both)
    _LANE_FIELDS = ("_hdr_cache", "evaluated", "tx")
    __slots__ = (*_LANE_FIELDS, "__dict__")

    def __init__(self, rules) -> None:
        sigs = [Sig(r) for r in signature_order(list(rules))]
        for i, s in enumerate(sigs):
            s.order = i
        self.sigs = sigs
        self._pcres = [it for s in sigs if s.rule.payload is not None for it in _pcre_items(s.rule.payload)]
        # rules with app-layer buffers are matched per transaction (rules.detect_tx), not here
        app_sigs = [s for s in sigs if s.rule.app is not None]
        if app_sigs:
            from rules.detect_tx import TxDetector

            sigs = [s for s in sigs if s.rule.app is None]
        # xbits / flowint state (rules.keywords._state), kept by a rule reload (keep_state)
        self.state = VarState()
        self.tx = TxDetector(app_sigs, self.state) if app_sigs else None
        # IP-only rules writing xbits: evaluated before the others on a packet (see the docstring)
        self._iponly_first = any(s.iponly and s.post for s in sigs)
        self._pcres += [it for s in app_sigs for b in s.rule.app.bufs for it in _pcre_items(b.chain)]
        self._tally_pcres()
        # `pkthdr` rules are the only ones a packet without a valid IP layer can match
        # (decoder-event rules on truncated or unknown packets)
        self.pkthdr = tuple(s for s in sigs if s.rule.proto == "pkthdr")
        self.index = RuleIndex(sigs)
        self.index.warm()
        self._scan = self.index.pattern_db.scan
        self._short_maps: dict[tuple, tuple] = {}     # short-pattern candidates -> the one tuple of them
        self._bounds = _header_bounds(self.index.sigs)
        self._plain_cache: dict[tuple, tuple] = {}   # header classes -> _plain's entry, for every flow with it
        self._hdr_cache: dict[int, dict] = {}        # flow_id -> {(to_server, src, sport): _plain(...)}
        self._wanted: dict[int, tuple] = {}           # id(cached entry) -> (it, {pattern id: window_candidates' answer})
        self._short_dbs: dict[int, tuple] = {}        # id(short candidates) -> their plan (_short_plan)
        self._heads: dict[int, tuple] = {}            # id(header group) -> (it, _group_heads' answer)
        self._offer_dbs: dict[frozenset, PatternDB] = {}   # a scan offer's pattern ids -> their own PatternDB
        self.evaluated = 0                            # rules whose checks ran (counter)

    def keep_state(self, old: "Detector") -> None:
        """A rule reload: this detector goes on with `old`'s xbits and flowint state."""
        self.state = old.state
        if self.tx is not None:
            self.tx.state = old.state

    def forget(self, flow_id: int) -> None:
        """The flow ended: its header cache and its flowints go."""
        self._hdr_cache.pop(flow_id, None)
        self.state.forget(flow_id)
        if self.tx is not None:
            self.tx.forget(flow_id)

    def trim(self, active_flows: int) -> None:
        """Evicted flows not yet reported grew the cache: start over."""
        if len(self._hdr_cache) > 4 * max(active_flows, 1024):
            self._hdr_cache.clear()
        if self.tx is not None:
            self.tx.trim(active_flows)

    def _plain(self, pkt: Packet):
        """(header-checked plain candidates, number of buckets they came from, groups with
        patterns, the candidates without IP-only rules, short-pattern candidates).

        The entry depends on the packet's header only through its protocol, direction (and
        whether it has a flow), and which intervals of the rules' port and address sets hold
        its ports and addresses (`_header_bounds`): so it is worked out once per such class
        of headers and shared by every flow in it.  A new connection, from another ephemeral
        port or another client of the same networks, costs a dict lookup instead of the walk
        (15-20 % of a SYN), and the classes are few: a flood of random addresses fills
        nothing new."""
        bounds = self._bounds
        if bounds is None:
            return self._plain_walk(pkt)
        ports, v4, v6 = bounds
        addrs = v4 if pkt.ipver == 4 else v6
        key = (pkt.proto, pkt.ipver, bisect_right(addrs, pkt.src), bisect_right(addrs, pkt.dst),
               bisect_right(ports, pkt.sport), bisect_right(ports, pkt.dport), pkt.to_server, pkt.flow is None)
        cache = self._plain_cache
        ent = cache.get(key)
        if ent is None:
            if len(cache) >= _PLAIN_MAX:
                cache.clear()
            ent = cache[key] = self._plain_walk(pkt)
        return ent

    def _plain_walk(self, pkt: Packet):
        """`_plain` worked out: the header walk of the packet's rule groups."""
        groups = self.index.groups(pkt.proto, pkt.sport, pkt.dport)
        plain: list = []
        nsrc = 0
        hdr_ok = header_ok
        for g in groups:
            pairs = g.plain_pairs
            hit = None if pairs is None else pairs.lookup(pkt.ipver, pkt.src, pkt.dst)
            if hit is not None:
                for rep, sigs, fwd, rev, free in hit:
                    if free or header_rest(rep, pkt, fwd, rev):
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
            # one tuple per candidate set, shared by every flow with it (short_candidates
            # keeps a database of the set's own patterns under its id)
            key = tuple(s.order for s in short)
            shared = self._short_maps.get(key)
            if shared is None:
                if len(self._short_maps) >= _SHORT_MAPS_MAX:
                    self._short_maps.clear()
                shared = self._short_maps[key] = short
            short = shared
        plain = tuple(plain)
        # IP-only rules run on the first packet of a flow direction only: the later packets
        # walk the candidates without them
        later = tuple(s for s in plain if not s.iponly)
        if len(later) == len(plain):
            later = plain
        return plain, nsrc, tuple(g for g in groups if g.by_pid), later, short, _flags_gate(later)

    def _flow_entry(self, pkt: Packet, flow):
        """`_plain(pkt)` for `pkt`'s flow direction, cached until the flow ends (the
        orientation is part of the key: a late SYN may turn the flow round)."""
        per_flow = self._hdr_cache.get(flow.flow_id)
        if per_flow is None:
            per_flow = self._hdr_cache[flow.flow_id] = {}
        key = (pkt.to_server, pkt.src, pkt.sport)
        ent = per_flow.get(key)
        if ent is None:
            ent = per_flow[key] = self._plain(pkt)
        return ent

    def prefilter_gate(self, flow, to_server: bool, src: int, sport: int, flags: int, empty: bool = False) -> int:
        """For the engine's lean lane (rules.engine.Engine._lean_tcp), on a later TCP packet
        of a flow direction (its first packet went through `run`, which cached the
        direction's candidates), with TCP flags `flags`: -1 unless every rule that could
        match it needs one of its fast patterns (no plain candidate that these flags let
        through, no 1-2 byte pattern, no transaction rule); else the number `run` counts as
        evaluated when no fast pattern is found (its plain candidates, the IP-only ones it
        skips after a direction's first packet included).  `empty`: a packet with no
        payload that the stream offers nothing either (an inline pure ACK) -- a 1-2 byte
        pattern is looked for only in bytes, and transaction rules run only on app-layer
        data, so neither counts."""
        ent = self._cached_entry(flow, to_server, src, sport)
        if ent is None or (self.tx is not None and not empty):
            return -1
        plain, _nsrc, _groups, _later, short, gate = ent
        if _flags_may_match(gate, flags) or (short and not empty):
            return -1
        return len(plain)

    def _cached_entry(self, flow, to_server: bool, src: int, sport: int):
        """The flow direction's candidate entry `run` cached on its first packet, or None."""
        per_flow = self._hdr_cache.get(flow.flow_id)
        return per_flow.get((to_server, src, sport)) if per_flow is not None else None

    def window_candidates(self, pkt: Packet, flow, to_server: bool, ids) -> bool:
        """For the engine's lean lanes: could the prefilter ids `ids`, seen in the inline
        window of `pkt` (a later packet of its flow direction), make a packet rule a
        candidate, as `run` would take it: a rule of the direction's groups with that
        fast pattern whose header fits the packet?  A pattern only other rules have (an
        FTP command in an HTTP response body) makes none, and detection would find
        nothing.  True when the direction has no cached entry (the general path decides).
        The answer depends on the header only, so it is kept per pattern id for each
        cached entry (shared, as the entry is, by the flows of a class of headers)."""
        ent = self._cached_entry(flow, to_server, pkt.src, pkt.sport)
        if ent is None:
            return True
        got = self._wanted.get(id(ent))
        if got is None or got[0] is not ent:
            if len(self._wanted) >= _PLAIN_MAX:
                self._wanted.clear()
            got = self._wanted[id(ent)] = (ent, {})
        known = got[1]
        for pid in ids:
            want = known.get(pid)
            if want is None:
                want = known[pid] = any(header_ok(rep, pkt) for g in ent[2] for rep, _sigs in g.pid_hdr.get(pid, ()))
            if want:
                return True
        return False

    def data_gate(self, flow, to_server: bool, src: int, sport: int, flags: int):
        """For the engine's lean lane on an in-order data segment of an app-layer flow (a
        later packet of its direction, TCP flags `flags`): None unless every packet rule
        that could match it needs a fast pattern in its inline window (no plain candidate
        that these flags let through); else (the number `run` counts as evaluated when it
        finds nothing, the direction's 1-2 byte pattern rules to look for in the window as
        `run` does).  Transaction rules are the lane's to run."""
        ent = self._cached_entry(flow, to_server, src, sport)
        if ent is None:
            return None
        plain, _nsrc, _groups, _later, short, gate = ent
        if _flags_may_match(gate, flags):
            return None
        return len(plain), short

    def iponly_skipped(self, pkt: Packet, flow) -> int:
        """How many IP-only candidates `run` skips (and counts as evaluated) on a later packet
        of `pkt`'s flow direction."""
        plain, _nsrc, _groups, later, _short, _gate = self._flow_entry(pkt, flow)
        return 0 if later is plain else len(plain) - len(later)

    def could_match(self, pkt: Packet, flow, *, iponly: bool) -> bool:
        """Could any rule match a later packet like `pkt` (same flow direction, addresses and
        ports)?  Decided by the rule headers alone: any candidate counts, whatever its other
        keywords (flags, thresholds, flowbits, payload); IP-only rules count only with
        `iponly` (they run on the first packet of a direction, which already went by)."""
        plain, _, pid_groups, later, short, _gate = self._flow_entry(pkt, flow)
        if (plain if iponly else later) or short:
            return True
        if self.tx is not None and self.tx.could_match(pkt, flow):
            return True
        hdr_ok = header_ok
        for g in pid_groups:
            for rep, _ids in self._group_heads(g):
                if hdr_ok(rep, pkt):
                    return True
        return False

    def _group_heads(self, g) -> tuple:
        """Each distinct header of a group's pattern rules, with the (pattern id, rules) pairs
        under it: ((header, ((pid, sigs), ...)), ...), made once per group."""
        got = self._heads.get(id(g))
        if got is None:
            by_rep: dict = {}
            for pid, pairs in g.pid_hdr.items():
                for rep, sigs in pairs:
                    by_rep.setdefault(id(rep), (rep, []))[1].append((pid, sigs))
            got = self._heads[id(g)] = (g, tuple((rep, tuple(ids)) for rep, ids in by_rep.values()))
        return got[1]

    def prefilter_only(self, pkt: Packet, flow, *, tx_quiet: bool = False, by_type: bool = False):
        """For a later packet of `pkt`'s flow direction (same addresses and ports, not the
        first of its direction): False when a rule could match it without a fast pattern
        in its payload (a plain candidate); otherwise the scan (payload -> truthy when it
        holds a fast pattern) that must find something for any rule to match it, or None
        when no rule with a pattern applies either (rules.api.Bypass "scan").  Rules
        with a 1-2 byte fast pattern are looked for as run() does (the short database, or
        `in` tests for a few), after the main database.  `tx_quiet`: the flow direction can
        have no transaction while the flow has no parser (the engine watches that), so
        transaction rules do not count.  `by_type` (an ICMP echo flow): only the patterns of
        rules whose itype and icode allow the packet's type and code 0 -- the data plane's
        scan, which hands over an echo of another code unscanned; the engine's own lane
        keeps the scan of every candidate, so that what its detection counts as evaluated
        stays what the general path counts."""
        _plain, _nsrc, pid_groups, later, short, _gate = self._flow_entry(pkt, flow)
        if later or (not tx_quiet and self.tx is not None and self.tx.could_match(pkt, flow)):
            return False
        pids = self._direction_pids(pid_groups, pkt, by_type)
        if not pids and not short:
            return None
        dbs = [self._offer_db(pids)] if pids else []
        if short:                       # the direction's 1-2 byte patterns: their own database
            # (each wherever it is: a datagram with an anchored one elsewhere is inspected too,
            # and the engine finds no candidate in it)
            dbs.append(self._short_plan(short)[5])
        return AnyPattern(dbs)

    def verdict_scan(self, pkt: Packet, flow):
        """For the ICMP echo flow direction of `pkt` that has a scan offer
        (prefilter_only(by_type=True)): which later echoes of code 0 the data plane may
        forward before they are inspected (rules.api.Bypass.late): None every one (no rule
        that could change the verdict applies), else the scan of those rules' fast patterns
        (an echo it finds nothing in: any rule that can match it only logs), or False none (the
        direction has 1-2 byte patterns, which no database of its own holds)."""
        _plain, _nsrc, pid_groups, _later, short, _gate = self._flow_entry(pkt, flow)
        if short:
            return False
        pids = self._direction_pids(pid_groups, pkt, True, verdict_only=True)
        return AnyPattern([self._offer_db(pids)]) if pids else None

    def _direction_pids(self, pid_groups, pkt: Packet, by_type: bool = False,
                        verdict_only: bool = False) -> frozenset:
        """The fast-pattern ids of the rules whose header takes `pkt` (and so every later
        packet of its flow direction): a scan offer looks for these, not for every rule's
        pattern.  `by_type`, for an ICMP echo flow (a direction of one message type): also
        only the rules whose itype and icode allow that type and code 0 -- an echo reply
        holds the request's payload, and so the pattern of every `itype:8` ping rule.
        `verdict_only`: only the rules that could change a verdict (_may_change_verdict)."""
        hdr_ok = header_ok
        itype = pkt.icmp_type if by_type and (pkt.proto == IPPROTO_ICMP or pkt.proto == IPPROTO_ICMPV6) else -1
        pids: set = set()
        for g in pid_groups:
            for rep, ids in self._group_heads(g):
                if hdr_ok(rep, pkt):
                    if itype < 0 and not verdict_only:
                        pids.update(pid for pid, _sigs in ids)
                    else:
                        pids.update(pid for pid, sigs in ids
                                    if any((itype < 0 or _icmp_allows(s, itype, 0))
                                           and (not verdict_only or _may_change_verdict(s)) for s in sigs))
        return frozenset(pids)

    def _offer_db(self, pids: frozenset) -> PatternDB:
        """A PatternDB of the fast patterns `pids`, compiled on first use and shared by every
        flow direction with the same set (at most _SHORT_MAPS_MAX sets are kept)."""
        db = self._offer_dbs.get(pids)
        if db is None:
            if len(self._offer_dbs) >= _SHORT_MAPS_MAX:
                self._offer_dbs.clear()
            patterns = self.index.pattern_db.patterns
            db = self._offer_dbs[pids] = PatternDB([patterns[i] for i in sorted(pids)])
        return db

    def run(self, pkt: Packet, flow, payload: bytes, thresholds: Thresholds, view=None,
            stream_hits: set | None = None) -> list:
        """The signatures matching `pkt`, in signature order.  `payload` is the packet's
        payload; `view` (rules.stream.StreamView) what the stream offers a TCP packet, None
        when it offers nothing (payload rules then inspect the packet alone).  The ids of
        signatures whose payload matched on the stream go into `stream_hits`.  `flow` None:
        not flow tracked (IP-only rules run every time)."""
        if flow is not None:
            # _flow_entry, inlined: this runs for every packet
            per_flow = self._hdr_cache.get(flow.flow_id)
            if per_flow is None:
                per_flow = self._hdr_cache[flow.flow_id] = {}
            key = (pkt.to_server, pkt.src, pkt.sport)
            ent = per_flow.get(key)
            if ent is None:
                ent = per_flow[key] = self._plain(pkt)
        else:
            ent = self._plain(pkt)
        plain, nsrc, pid_groups, later, short, _gate = ent
        first_in_dir = flow is None or (flow.pkts_toserver if pkt.to_server else flow.pkts_toclient) == 1
        # (skipped IP-only candidates still count as evaluated, as they always have)
        skipped = 0
        if not first_in_dir and later is not plain:
            skipped = len(plain) - len(later)
            plain = later
        found = None
        if view is not None:
            found = self._stream_found(view, payload)
            # short patterns are looked for in what the view offers, each buffer on its own as
            # the rules' contents are matched (the payload at the end of an inline window too,
            # where an anchored pattern has its own place)
            scan = b""
            if view.covers or not payload:
                sbufs, heads = view.bufs, ((payload,) if payload else ())
            else:
                sbufs, heads = view.bufs + (payload,), ()
        else:
            scan = payload
            sbufs, heads = (payload,), ()
        cands = plain
        if short and (payload or any(sbufs)):
            extra = self.short_candidates(short, sbufs, heads)
            if extra:
                cands = list(plain)
                cands.extend(extra)
                nsrc += 2                         # merged out of order: sorted below
        if pid_groups and (found or (found is None and scan)):
            if found is None:
                found = self._scan(scan)
            if found:
                if cands is plain:
                    cands = list(plain)
                hdr_ok = header_ok
                for g in pid_groups:
                    pid_hdr = g.pid_hdr
                    # the group's pattern ids among those found (keys view & set: a C loop over `found`)
                    for pid in pid_hdr.keys() & found:
                        for rep, sigs in pid_hdr[pid]:
                            if hdr_ok(rep, pkt):
                                nsrc += 1
                                cands.extend(sigs)
        if not cands:
            self.evaluated += skipped
            return []
        if nsrc > 1 and cands is not plain:
            cands.sort(key=_order_key)
        self.evaluated += len(cands) + skipped
        iponly_first = first_in_dir and self._iponly_first
        if iponly_first:
            cands = sorted(cands, key=_iponly_first_key)
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
            if s.reads and not reads_ok(s, pkt, flow, self.state):
                continue
            if s.has_payload:
                if view is None or s.kind == PKT:
                    if not r.payload.match(payload, pkt):
                        continue
                elif any(r.payload.match(b, pkt) for b in view.bufs):
                    stream_hits.add(id(s))
                elif s.kind != PKT_STREAM or not r.payload.match(payload, pkt):
                    continue
                if s.only_stream and id(s) not in stream_hits:
                    continue
            elif s.only_stream:
                continue
            # matched: post-match flowbits, xbits, flowint at once (later rules on this packet see them)
            if s.fb_ops or s.post:
                post_match(s, pkt, flow, self.state)
            if r.detection_filter is not None and not thresholds.allows(r.detection_filter, r, pkt):
                continue
            matches.append(s)
        if iponly_first and len(matches) > 1:
            matches.sort(key=_order_key)
        return matches

    def short_candidates(self, short, bufs: tuple, heads: tuple = ()) -> list:
        """The rules of a flow direction's 1-2 byte fast patterns (`short` of its cached
        entry) whose pattern the buffers hold where their content could match it: anywhere
        in one of `bufs` (the buffers the rules' contents are matched on, each on its own),
        or, for a pattern a content anchors (`fp_short`'s start and end: `depth:2`), at its
        place in one of `bufs` or `heads` (buffers the contents are matched on too, whose
        bytes `bufs` already hold: an inline segment's payload at the end of its window).
        Many patterns, or a few in a long buffer (a stream window): one scan of a database
        of the set's own unanchored patterns (compiled on first use, shared by every flow
        with the set), not of every short pattern of the rules, nor a `bytes in` per
        pattern (about 1 ns a byte each on binary data); an anchored one is looked for in
        its few bytes."""
        _short, loose, db, rules_of, places, _every = self._short_plan(short)
        extra: list = []
        if loose:
            if len(loose) > _SHORT_LOOP or any(len(b) > _SHORT_IN_MAX for b in bufs):
                ids = set()
                for b in bufs:
                    if b:
                        ids.update(db.scan(b))
                for i in ids:
                    extra.extend(rules_of[i])
            else:
                lows = None
                for pat, nocase, s in loose:
                    if nocase:
                        if lows is None:
                            lows = [b.lower() for b in bufs]
                        hay = lows
                    else:
                        hay = bufs
                    for b in hay:
                        if pat in b:
                            extra.append(s)
                            break
        for pat, nocase, start, end, sigs in places:
            for b in bufs + heads if heads else bufs:
                w = b[start:end]
                if pat in (w.lower() if nocase else w):
                    extra.extend(sigs)
                    break
        return extra

    def _short_plan(self, short) -> tuple:
        """(short; its unanchored rules as (pattern, caseless, rule); a PatternDB of their
        distinct (pattern, caseless) pairs, or None without any; the rules of each of its
        ids; the anchored places as (pattern, caseless, start, end, their rules); a
        PatternDB of all its distinct patterns, anchored or not), made on first use and
        kept under id(short) (the tuple keeps `short` alive, so the id stays its)."""
        got = self._short_dbs.get(id(short))
        if got is not None:
            return got
        ids: dict[tuple, int] = {}
        rules_of: list[list] = []
        loose = []
        places: dict[tuple, list] = {}
        for s in short:
            pat, nocase, _id, start, end = s.fp_short
            if end >= 0:
                places.setdefault((pat, nocase, start, end), []).append(s)
                continue
            loose.append((pat, nocase, s))
            i = ids.get((pat, nocase))
            if i is None:
                i = ids[(pat, nocase)] = len(rules_of)
                rules_of.append([])
            rules_of[i].append(s)
        if len(self._short_dbs) >= _SHORT_MAPS_MAX:
            self._short_dbs.clear()
        db = PatternDB(list(ids)) if ids else None
        # every pattern wherever it is, anchored or not: what a scan offer looks for
        every = db if not places else PatternDB(list(dict.fromkeys([(pat, nc) for pat, nc, _s in loose]
                                                                   + [k[:2] for k in places])))
        got = self._short_dbs[id(short)] = (short, tuple(loose), db, tuple(tuple(v) for v in rules_of),
                                            tuple(k + (tuple(v),) for k, v in places.items()), every)
        return got

    def _stream_found(self, view, payload: bytes) -> set:
        """Fast-pattern ids present in what a stream view offers: the ids the stream stage
        already knows for its window, or a scan of its buffers -- and of the packet payload
        when the buffers do not hold it (IDS)."""
        if view.found is not None:
            return view.found
        found: set = set()
        for b in view.bufs:
            if b:
                found |= self._scan(b)
        if payload and not view.covers:
            found |= self._scan(payload)
        return found

    def stream_scanner(self):
        """The prefilter as the stream stage uses it: the fast-pattern database's scan and each
        pattern's length (1-2 byte patterns are looked for in the window by the detect stage)."""
        from rules.stream import Scanner

        return Scanner(self._scan, {i: len(p) for i, (p, _) in enumerate(self.index.pattern_db.patterns)})

    def run_pseudo(self, pkt: Packet, bufs: tuple, thresholds: Thresholds, stream_hits: set) -> list:
        """The stream rules matching the data a flow's end releases (IDS), on the pseudo
        packet `pkt` of that direction: only rules whose payload inspects the stream run
        (a pseudo packet has no payload or header of its own to match)."""
        found: set = set()
        for b in bufs:
            found |= self._scan(b)
        matches = []
        for s in self.sigs:
            if not s.has_payload or s.kind == PKT or s.rule.app is not None or not header_ok(s, pkt):
                continue
            r = s.rule
            if s.pid >= 0 and s.pid not in found:
                continue
            if not all(chk(pkt) for chk in r.checks):
                continue
            if s.reads and not reads_ok(s, pkt, pkt.flow, self.state):
                continue
            if not any(r.payload.match(b, pkt) for b in bufs):
                continue
            stream_hits.add(id(s))
            if s.fb_ops or s.post:
                post_match(s, pkt, pkt.flow, self.state)
            if r.detection_filter is not None and not thresholds.allows(r.detection_filter, r, pkt):
                continue
            matches.append(s)
        self.evaluated += len(matches)
        return matches

    def run_nonip(self, pkt: Packet, thresholds: Thresholds) -> list:
        """The `pkthdr` rules matching a packet with no IP layer (header checks only: such a
        packet has no addresses, ports or payload to inspect)."""
        matches = []
        self.evaluated += len(self.pkthdr)
        for s in self.pkthdr:
            r = s.rule
            if s.has_payload or not all(chk(pkt) for chk in r.checks):
                continue
            if s.reads and not reads_ok(s, pkt, None, self.state):
                continue
            if s.post:
                post_match(s, pkt, None, self.state)
            if r.detection_filter is not None and not thresholds.allows(r.detection_filter, r, pkt):
                continue
            matches.append(s)
        return matches

    def _tally_pcres(self) -> None:
        """detect.pcre_limit_hits is one cell that each of this detector's regexes adds its
        match-limit hits to, starting from what they have counted so far.  Summing the
        regexes at each report instead (4,497 with ET Open) held a live worker for 3-30 ms
        every second: between two pings their memory had gone cold."""
        regexes = list({id(it.regex): it.regex for it in self._pcres}.values())
        self._pcre_limits = [sum(rx.limit_hits for rx in regexes)]
        for rx in regexes:
            rx.tallies = (*rx.tallies, self._pcre_limits)

    def __getstate__(self) -> dict:
        state = dict(self.__dict__)
        for k in Detector._LANE_FIELDS:
            state[k] = getattr(self, k)
        return state

    def __setstate__(self, state: dict) -> None:
        """Unpickled (a rule reload ships the compiled rules): the regexes are new objects."""
        for k in Detector._LANE_FIELDS:
            setattr(self, k, state.pop(k))
        self.__dict__.update(state)
        self._tally_pcres()

    def stats(self) -> dict[str, int]:
        out = self.index.stats()
        if self.tx is not None:
            out["detect.tx_evaluated"] = self.tx.evaluated
        out["detect.pcre_limit_hits"] = self._pcre_limits[0]
        out.update(self.state.stats())
        return out
