"""The detect stage for app-layer rules: rules with app buffers or conditions
(`Rule.app`, rules.applayer) are matched against transactions, not packets.

    txd = TxDetector(sigs)                 # the app sigs, in signature order
    matches = txd.run(pkt, flow, state, payload, view, thresholds, stream_hits)

As Suricata's transaction inspection:
- a rule is evaluated on packets of its direction (`AppSpec.to_server`), for each
  transaction of the flow whose progress reached what the rule needs
  (`AppSpec.need`: a request buffer at the request line or the headers, a
  response buffer at the status line, ...);
- once evaluated on a transaction it is done for that transaction, matched or not
  (`Tx.inspected`): a rule fires at most once per transaction.  A rule with a body
  buffer is evaluated again while the body grows, until it matches or the body is
  complete;
- every buffer must match (a multi-buffer, such as dns.query, when any of its
  items does); a buffer the transaction does not have is no match;
- the rule's other keywords (flow, flowbits, ...) are checked on the packet, and
  payload keywords outside any sticky buffer on the packet or the stream window.

Candidates: each rule's fast pattern (`AppSpec.fp`) lives in one buffer; each
buffer that holds fast patterns is scanned once per transaction (bodies again
as they grow) by a hyperscan database of its patterns.  Rules without a fast
pattern are always candidates.  Rule headers are checked once per flow direction
and bucket of identical headers, as for packet rules.

A match counts as a stream match (the verdict stage drops the flow on a drop
rule), as Suricata applies an app-layer rule's action to the flow.
"""
from __future__ import annotations

import operator

from rules.applayer.base import DONE, GROWN
# (rules.detect builds a TxDetector inside Detector.__init__ only: no import cycle)
from rules.detect import _order_key, header_ok, post_match, reads_ok
from rules.payload import content_anchor
from rules.prefilter import PatternDB, header_key

# _match's answers; _RETRY, _WAIT and _WAIT_FLOW leave the rule for a later packet: _WAIT
# when only the transaction can change that (a buffer not there yet, a condition on it),
# _WAIT_FLOW when only the flow's flowbits can (flowbits:isset / isnotset), _RETRY when the
# packet itself may (another packet keyword, xbits / flowint, the packet's payload)
_NO, _MATCH, _RETRY, _WAIT, _WAIT_FLOW = 0, 1, 2, 3, 4
_EMPTY: frozenset = frozenset()
_READS_NONE = (False, False)
_FB_WAIT = (("bits-wait", False), ("bits-wait", True))   # Tx.found's keys of run()'s flowbits memo, by direction
_QUIET = (("quiet", False), ("quiet", True))             # ... and of its last run that matched nothing
_SEEN_VALUE_MAX = 256       # _Slot.scan remembers values up to this many bytes,
_SEEN_MAX = 4096            # and this many of them per slot


def _items(v, multi: bool, transforms: tuple) -> list:
    """A buffer's value as the list of what is inspected: each item of a multi-buffer, each
    through the rule's transforms."""
    vals = v if multi else [v]
    if not transforms:
        return vals
    out = []
    for b in vals:
        for t in transforms:
            b = t(b)
        out.append(b)
    return out


# _Slot.packed's fields, in order (rules/_txdetect.c's P_* and the lanes' quiet run,
# rules/engine.py _body_lane, read them by place)
PACKED = ("side", "progress", "get", "multi", "transforms", "grows", "body", "by_pid", "db", "seen", "overlap",
          "anchors")
_PACK = operator.attrgetter(*PACKED)


class _Slot:
    """One buffer as the prefilter scans it: (name, side, transforms) and its patterns."""

    __slots__ = ("get", "side", "progress", "multi", "body", "transforms", "patterns", "by_pid", "db", "proto",
                 "grows", "overlap", "seen", "packed", "anchors")

    def __init__(self, buf, proto: str) -> None:
        self.proto = proto                   # its protocol: a slot is scanned on that protocol's transactions only
        self.side = buf.to_server
        self.progress = buf.progress
        self.multi = buf.multi
        self.body = buf.body
        self.transforms = buf.transforms
        # (literal, caseless, its place or None) -> pattern id: a literal a rule's content
        # anchors (rules.payload.content_anchor) is a pattern of its own for each place
        self.patterns: dict[tuple[bytes, bool, tuple | None], int] = {}
        self.by_pid: dict[int, list] = {}
        # pattern id -> (literal, lowercased when caseless; caseless; start; end), for the
        # anchored ones: a scan's hit counts only where the literal lies in [start, end)
        self.anchors: dict[int, tuple] = {}
        self.db: PatternDB | None = None
        # a body read as it is (no transform, one value) only grows: each packet's scan covers
        # the bytes added since the last one, from `overlap` bytes before them (set with db)
        self.grows = self.body and not self.multi and not self.transforms
        # (a growing body is read through its getter's twin that does not copy it)
        self.get = GROWN.get(buf.get, buf.get) if self.grows else buf.get
        self.overlap = 0
        # value -> its scan's ids, for short values: the same Host, User-Agent, status or
        # Server comes back transaction after transaction (bounded; not pickled)
        self.seen: dict[bytes, frozenset] = {}
        self.packed: tuple | None = None     # set by pack() once the database is

    def pack(self) -> None:
        """Once `db` and `overlap` are set: the fields the compiled candidate selection reads,
        in one tuple (rules/_txdetect.c reads one attribute a slot instead of eleven).  The
        objects are the slot's own (`by_pid`, `seen` are the same dicts), so it stays true
        as long as no field is assigned again."""
        self.packed = _PACK(self)

    def __getstate__(self):
        return tuple(None if k in ("seen", "packed") else getattr(self, k) for k in self.__slots__)

    def __setstate__(self, state) -> None:
        for k, v in zip(self.__slots__, state):
            setattr(self, k, v if k != "seen" else {})
        if self.db is not None:
            self.pack()

    def scan(self, v: bytes) -> frozenset | set:
        """The ids of the slot's patterns in `v` (PatternDB.scan), remembered for a short
        value.  The answer is only read, never changed."""
        if len(v) > _SEEN_VALUE_MAX:
            return self.placed(self.db.scan(v), v)
        seen = self.seen
        got = seen.get(v)
        if got is None:
            if len(seen) >= _SEEN_MAX:
                seen.clear()
            got = seen[v] = frozenset(self.placed(self.db.scan(v), v))
        return got

    def placed(self, ids, v):
        """`ids` (a scan's of `v`) without the anchored patterns that `v` does not hold at
        their place; `ids` itself when the slot has no anchored pattern or the scan found
        nothing (rules/_txdetect.c's `placed` takes the same shortcut before calling this)."""
        anchors = self.anchors
        if not anchors or not ids:
            return ids
        out = set()
        for pid in ids:
            a = anchors.get(pid)
            if a is not None:
                w = v[a[2]:a[3]]
                if a[0] not in (w.lower() if a[1] else w):
                    continue
            out.add(pid)
        return out

    def values(self, tx) -> list:
        v = self.get(tx)
        return [] if v is None else _items(v, self.multi, self.transforms)


class TxDetector:
    def __init__(self, sigs, state=None) -> None:
        from rules.keywords._state import VarState

        self.sigs = sigs
        self.state = state if state is not None else VarState()    # xbits / flowint (rules.detect)
        self.protos = frozenset(s.rule.app.proto for s in sigs)
        buckets: dict[tuple, int] = {}
        self.reps: list = []                 # one representative sig per distinct header
        self.bucket: dict[int, int] = {}     # sig.order -> its header bucket (not id(): the table survives a pickle round trip)
        slots: dict[tuple, _Slot] = {}
        # (direction, app protocol) -> the sigs without a fast pattern whose part for packets of
        # that direction is of that protocol (the only ones run() evaluates on its transactions)
        self.always: dict[tuple[bool, str], tuple] = {}
        always: dict[tuple[bool, str], list] = {}
        protos: list = []                    # per bucket: the IP protocols its rules take (None: any)
        # (app protocol, direction) -> per side [to client, to server], whether a rule of that
        # direction reads it (a buffer or a condition: what its AppSpec.need comes from): a
        # direction is inspected complete once the sides its rules read are (run: Tx.final)
        reads: dict[tuple[str, bool], list] = {}
        for s in sigs:
            for sp in (s.rule.app, s.rule.app.other):
                if sp is not None:
                    r = reads.setdefault((sp.proto, sp.to_server), [False, False])
                    for b in sp.bufs:
                        r[b.to_server] = True
                    for side, _fn in sp.checks:
                        r[side] = True
        self.reads = {k: (v[0], v[1]) for k, v in reads.items()}
        for s in sigs:
            k = header_key(s)
            b = buckets.get(k)
            if b is None:
                b = buckets[k] = len(self.reps)
                self.reps.append(s)
                protos.append(set())
            self.bucket[s.order] = b
            ip = s.rule.ip_protos
            if ip is None or protos[b] is None:
                protos[b] = None
            else:
                protos[b] |= ip
            spec = s.rule.app
            for sp in (spec, spec.other):
                if sp is None:
                    continue
                if sp.fp is None:
                    always.setdefault((sp.to_server, sp.proto), []).append(s)
                    continue
                i, lit, nocase = sp.fp
                buf = sp.bufs[i]
                at = content_anchor(buf.chain.items, lit, nocase)
                # one slot for each (getter, transforms): buffers read through the same getter
                # (file.data and http.response_body) are the same bytes, scanned once
                key = (buf.get, buf.to_server, buf.transforms, sp.to_server)
                slot = slots.get(key)
                if slot is None:
                    slot = slots[key] = _Slot(buf, sp.proto)
                pid = slot.patterns.setdefault((lit, nocase, at), len(slot.patterns))
                if at is not None:
                    slot.anchors[pid] = (lit.lower() if nocase else lit, nocase, at[0], at[1])
                slot.by_pid.setdefault(pid, []).append(s)
        for slot in slots.values():
            slot.db = PatternDB([(lit, nocase) for lit, nocase, _at in slot.patterns])
            slot.overlap = max(len(lit) for lit, _nc, _at in slot.patterns) - 1
            slot.pack()
        # per packet direction: the slots of the rules evaluated on it
        self.slots = {d: tuple(sl for k, sl in slots.items() if k[3] == d) for d in (True, False)}
        self.always = {k: tuple(v) for k, v in always.items()}
        self.ip_protos = tuple(None if p is None else frozenset(p) for p in protos)
        self._hdr: dict[int, dict] = {}      # flow_id -> {(to_server, src, sport): {bucket: header ok}}
        self.evaluated = 0
        self.bit_waits = True                # run() remembers flowbits waits (tests turn it off)
        self.quiet_runs = True               # ... and a run that matched nothing (tests turn it off)

    def forget(self, flow_id: int) -> None:
        self._hdr.pop(flow_id, None)

    def trim(self, active_flows: int) -> None:
        if len(self._hdr) > 4 * max(active_flows, 1024):
            self._hdr.clear()

    def _ok_memo(self, pkt, flow) -> dict:
        """bucket -> whether its header admits packets like `pkt` (this flow direction),
        filled as buckets come up, kept until the flow ends."""
        per = self._hdr.get(flow.flow_id)
        if per is None:
            per = self._hdr[flow.flow_id] = {}
        key = (pkt.to_server, pkt.src, pkt.sport)
        memo = per.get(key)
        if memo is None:
            memo = per[key] = {}
        return memo

    def _ok(self, memo: dict, b: int, pkt) -> bool:
        ok = memo.get(b)
        if ok is None:
            ok = memo[b] = header_ok(self.reps[b], pkt)
        return ok

    def could_match(self, pkt, flow) -> bool:
        """Could an app rule match a later packet of this flow direction (headers only)?
        Only TCP and UDP flows get a parser, hence transactions; a rule header's IP
        protocols count too (the candidate walk leaves them to the index, which app rules
        are not in: `alert http` does not take a ping)."""
        proto = flow.proto
        if proto != 6 and proto != 17:
            return False
        if flow.app is not None and flow.app.proto and flow.app.proto not in self.protos:
            return False
        memo = self._ok_memo(pkt, flow)
        ips = self.ip_protos
        return any((ips[b] is None or proto in ips[b]) and self._ok(memo, b, pkt) for b in range(len(self.reps)))

    def _candidates(self, tx, d: bool, memo: dict, pkt, proto: str) -> list:
        """The signatures to evaluate on `tx` for a packet of direction `d`, in signature
        order (`_candidates_py`, or its compiled twin rules/_txdetect.c when built)."""
        return _CANDIDATES(self, tx, d, memo, pkt, proto)

    def _candidates_py(self, tx, d: bool, memo: dict, pkt, proto: str) -> list:
        """The signatures to evaluate on `tx` for a packet of direction `d`, in signature
        order: those without a fast pattern, and those whose fast pattern its buffers hold.

        What no later packet can change is worked out once per transaction and direction
        (kept in `tx.found` under ("cands", d), with the flow direction's header memo it was
        made with): the rules without a fast pattern, and the rules of each slot once its
        set is final (kept under id(slot), as before).  A packet then looks only at the
        slots still open: another side's not there yet, or a body still growing."""
        bucket, ok = self.bucket, self._ok
        found = tx.found
        key = ("cands", d)
        fixed = found.get(key)
        if fixed is None or fixed[0] is not memo:
            fixed = found[key] = [memo, [sl for sl in self.slots[d] if sl.proto == proto],
                                  [s for s in self.always.get((d, proto), ()) if ok(memo, bucket[s.order], pkt)]]
        _memo, open_slots, settled = fixed
        out = None
        prog = tx.progress
        closed = False
        for slot in open_slots:
            if prog[slot.side] < slot.progress:       # not there yet
                continue
            got = found.get(id(slot))
            final = got is not None
            if not final:
                vals = slot.values(tx)
                if slot.grows:
                    # a body not there yet (below its minimal inspect size) holds no pattern:
                    # nothing to scan or to remember (the first scan of it covers it whole)
                    got = self._grown(slot, vals, found) if vals else _EMPTY
                else:
                    # (kept per transaction until it goes: no set made for a slot found empty)
                    got = _EMPTY
                    for v in vals:
                        if v:
                            hit = slot.scan(v)
                            if hit:
                                got = got | hit if got else hit
                # kept once final: a body once complete, another buffer once there (or once
                # its side is past the progress it comes at)
                if prog[slot.side] >= DONE or not slot.body and (vals or prog[slot.side] > slot.progress):
                    found[id(slot)] = got
                    final = True
            if final:                                 # its rules join the settled ones for good
                closed = True
                dest = settled
            else:
                if out is None:
                    out = []
                dest = out
            for pid in got:
                for s in slot.by_pid[pid]:
                    if ok(memo, bucket[s.order], pkt):
                        dest.append(s)
        if closed:
            fixed[1] = [sl for sl in open_slots if id(sl) not in found]
            if len(settled) > 1:
                settled.sort(key=_order_key)
        if not out:
            return settled
        out.extend(settled)
        if len(out) > 1:
            out.sort(key=_order_key)
        return out

    @staticmethod
    def _grown(slot: _Slot, vals: list, found: dict) -> set:
        """The fast patterns of a growing body (one value, appended to since the last packet):
        those found before, and those in the added bytes or ending in them (a pattern ending
        at or after the old end starts at most `overlap` bytes before it) -- the same set a
        scan of the whole body gives, without scanning it again on every packet.  Kept in
        `found` under (id(slot), 0) as (bytes scanned, set); a complete body's set is kept
        under id(slot) by the caller, as before."""
        v = vals[0] if vals else b""
        key = (id(slot), 0)
        prev = found.get(key)
        n = len(v)
        if prev is not None and prev[0] <= n:
            done, got = prev
            if done < n:
                got = got | slot.placed(slot.db.scan(bytes(v[max(0, done - slot.overlap):])), v)
        else:
            got = set(slot.placed(slot.db.scan(bytes(v)), v)) if v else set()
        found[key] = (n, got)
        return got

    def inspects(self, proto: str) -> bool:
        return proto in self.protos

    @staticmethod
    def idle(parser, d: bool, flow) -> bool:
        """Would `run` skip direction `d` of the flow's transactions now: its last run left
        every rule it tried waiting on what has not changed since (`run`)."""
        mark = parser.tx_idle[d]
        return mark is not None and mark[0] == parser.gen and (mark[1] is None or mark[1] == flow.flowbits)

    def run(self, pkt, flow, st, payload: bytes, view, thresholds, stream_hits: set) -> list:
        """The transaction rules matching on `pkt`'s direction of the flow's transactions.
        A run that left every rule it tried decided or waiting on the transactions alone
        (_WAIT) or on the flow's flowbits (_WAIT_FLOW) is remembered with the parser's `gen`
        (and the flowbits as the run found them): until that moves (or they change), another
        packet of the direction could only come to the same answers, and is not run (an HTTP
        body growing below its minimal inspect size: every segment but the last).  Within a
        run, a rule whose flowbits condition failed on a transaction is not matched again
        there while the flow's flowbits are the ones it failed on (`bit_waits`; kept in
        Tx.found): a body growing past its minimal inspect size runs on every segment, and
        ET's file.data rules that wait on a bit of the request came up on each one.  And a
        run that matched no rule on a transaction (each candidate done, waiting on the
        flowbits or not due) is kept with its candidates, the progress and the flowbits: a
        later run with the same three would skip the same rules, and only counts them
        (`quiet_runs`; on a 256 KiB response the walk went over some 25 settled rules on
        each segment up to the body limit)."""
        parser = st.parser
        if parser is None or not parser.txs or st.proto not in self.protos:
            return []
        d = pkt.to_server
        if self.idle(parser, d, flow):
            return []
        gen = parser.gen
        bits = frozenset(flow.flowbits)      # (a rule of this run may set one a rule before it waits on)
        memo = self._ok_memo(pkt, flow)
        matches = []
        idle = gen is not None
        on_bits = False
        read0, read1 = self.reads.get((st.proto, d), _READS_NONE)
        fb_key = _FB_WAIT[d] if self.bit_waits else None
        quiet_key = _QUIET[d] if self.quiet_runs else None
        for tx in parser.txs:
            if tx.only is not None and tx.only != d:
                continue
            prog = tx.progress
            if (prog[0] >= DONE or not read0) and (prog[1] >= DONE or not read1):
                # inspected complete in this direction (after this run): every side its rules
                # read is complete (an HTTP request's rules do not wait for its response)
                tx.final[d] = True
            done = tx.inspected[d]
            cands = self._candidates(tx, d, memo, pkt, st.proto)
            # s.order -> the flowbits a flowbits condition of the rule failed on (_WAIT_FLOW):
            # a condition on the bits alone, so while they are the same it fails again
            bit_wait = tx.found.get(fb_key) if fb_key is not None else None
            at = (prog[0], prog[1])
            if quiet_key is not None:
                # the last run on this transaction and direction matched nothing: with the same
                # candidates, progress and flowbits this one would skip the same ones (`done`
                # only grows, a flowbits wait stays until the rule is matched again)
                q = tx.found.get(quiet_key)
                if q is not None and q[1] == at and q[2] == flow.flowbits and q[0] == cands:
                    self.evaluated += q[3]
                    if q[4]:
                        on_bits = True
                    continue
            tried = 0                 # rules counted as evaluated
            quiet = True              # none of them matched (_match not called)
            waited = False            # one skipped on a flowbits wait
            for s in cands:
                if s.order in done:
                    continue
                spec = s.rule.app
                if spec.to_server != d:
                    spec = spec.other
                if spec.proto != st.proto:
                    continue
                prog = tx.progress
                if prog[0] < spec.need[0] or prog[1] < spec.need[1]:
                    continue
                self.evaluated += 1
                tried += 1
                if bit_wait is not None:
                    was = bit_wait.get(s.order)
                    if was is not None and was == flow.flowbits:
                        on_bits = waited = True
                        continue
                quiet = False
                hit = self._match(s, spec, tx, pkt, payload, view, flow, self.state)
                if hit == _RETRY:
                    idle = False
                    continue
                if hit == _WAIT:
                    continue
                if hit == _WAIT_FLOW:
                    on_bits = True
                    if fb_key is not None:
                        if bit_wait is None:
                            bit_wait = tx.found[fb_key] = {}
                        bit_wait[s.order] = frozenset(flow.flowbits)
                    continue
                done.add(s.order)
                if hit != _MATCH:
                    continue
                stream_hits.add(id(s))
                r = s.rule
                if s.fb_ops or s.post:
                    post_match(s, pkt, flow, self.state)
                if r.detection_filter is not None and not thresholds.allows(r.detection_filter, r, pkt):
                    continue
                matches.append(s)
            if quiet_key is not None:
                if quiet:
                    tx.found[quiet_key] = (list(cands), at, frozenset(flow.flowbits), tried, waited)
                else:
                    tx.found.pop(quiet_key, None)
        if gen is not None:
            parser.tx_idle[d] = (gen, bits if on_bits else None) if idle else None
        return matches

    @staticmethod
    def _match(s, spec, tx, pkt, payload: bytes, view, flow=None, state=None) -> int:
        """_MATCH; _NO, the rule cannot match this transaction any more; else not now but
        maybe on a later packet (as Suricata's NO_MATCH / CANT_MATCH): _RETRY, a packet
        keyword (flow, flags, ...), xbits / flowint or the payload part did not match this
        packet; _WAIT_FLOW, a flowbits:isset / isnotset did not; _WAIT, a buffer is not there
        yet while its side is still at or before the buffer's progress, a condition failed
        before its side is complete, or a body that did not match is still growing (unless
        the chain reads no further than the bytes the body holds: PayloadChain.prefix_reach;
        then _NO, the answer the complete body would give)."""
        r = s.rule
        for chk in r.checks:
            if not chk(pkt):
                return _WAIT_FLOW if chk in r.flow_state else _RETRY
        if state is not None and s.reads:      # xbits / flowint conditions (rules.detect)
            if not reads_ok(s, pkt, flow, state):
                return _RETRY
        prog = tx.progress
        for side, fn in spec.checks:
            if not fn(tx):
                return _WAIT if prog[side] < DONE else _NO
        for b in spec.bufs:
            v = b.get(tx)
            if v is None:
                return _WAIT if prog[b.to_server] <= b.progress else _NO
            chain = b.chain
            if b.multi or b.transforms:
                ok = any(chain.match_buffer(x) for x in _items(v, b.multi, b.transforms))
            else:
                ok = chain.match_buffer(v)
            if not ok:
                if b.body and prog[b.to_server] < DONE:
                    # a body still growing is matched again as it grows, unless the chain
                    # reads no further than the bytes it already holds (a body only grows)
                    reach = None if b.multi or b.transforms else chain.prefix_reach()
                    return _NO if reach is not None and len(v) >= reach else _WAIT
                return _NO
        if r.payload is not None:
            bufs = view.bufs if view is not None and view.bufs else (payload,)
            if not any(r.payload.match(b, pkt) for b in bufs):
                return _RETRY
        return _MATCH


# The compiled candidate selection (rules/_txdetect.c, built by the install), or the Python
# reference: the same answers and effects (tests/unit/test_txdetect_compiled.py)
try:
    from rules import _txdetect
except ImportError:          # (not built: a checkout used without `pip install`)
    _txdetect = None         # type: ignore[assignment]
if _txdetect is not None:
    _txdetect.setup(header_ok, _order_key, _EMPTY, DONE, _SEEN_VALUE_MAX, _SEEN_MAX)
    _CANDIDATES = _txdetect.candidates
else:
    _CANDIDATES = TxDetector._candidates_py
