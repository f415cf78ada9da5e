"""Candidate selection: which rules can apply to a packet, cheaply.

Two stages, so the per-packet cost follows what the packet can match rather
than the size of the rule set:

1. Grouping by header.  Rules are indexed per IP protocol number (a rule's
   `ip_protos`; `ip` rules join every protocol) and, for TCP/UDP/SCTP, by port:
   a rule with a destination port set other than `any` is keyed on the
   packet's destination port; a rule with `any` there but a source port set is
   keyed on the source port; the rest (both `any`, or `<>` rules, whose ports
   may sit on either side) are in the protocol's always-group.  Port sets are
   cut into elementary segments at every rule boundary, so one group per
   segment holds exactly the rules whose port set covers it; groups are built
   lazily on first use and cached per port.
2. Inside a group, rules with a fast pattern are reached through a single
   hyperscan block-mode database holding every distinct fast pattern of the
   rule set (literal bytes escaped, caseless per pattern, SINGLEMATCH): one
   scan of the payload gives the pattern ids present, and each group maps a
   pattern id to its rules.  Rules without a fast pattern are always
   candidates of their group.

Which hyperscan: libhs itself (Debian's libhyperscan5, opened at run time by
rules/_hotpath.c's HsDatabase) when it can be opened, else the `hyperscan`
module's own copy.  Both answer the same; libhs called from C costs a short
scan about 30 ns against about 190 through the module (its argument parsing,
lock, GIL release and a Python callback per match).  `BACKEND` says which one
this process uses, and `backend_note()` why.

The hyperscan database and scratch do not survive a fork safely: build the
index inside the worker, or load it there.  A PatternDB pickles its database
as hyperscan's serialized bytes and makes a new scratch where it is loaded
(a rule reload compiles the rules once, in the supervisor: bridge.reload).
"""
from __future__ import annotations

from bisect import bisect_right
from typing import Any, Iterable

from rules.payload import content_anchor

try:
    import hyperscan as _hs
except ImportError:                       # pragma: no cover - hyperscan is a hard dependency in practice
    _hs = None

try:
    from rules import _hotpath as _hot
except ImportError:                       # pragma: no cover - built by the install
    _hot = None


def _libhs() -> tuple[bool, str]:
    """(usable, note): libhs through rules._hotpath, or why not."""
    if _hot is None or not hasattr(_hot, "hs_library"):
        return False, "rules._hotpath is not built"
    try:
        return True, "libhs " + _hot.hs_library().split()[0]
    except OSError as e:
        return False, str(e)


_LIBHS_OK, _LIBHS_NOTE = _libhs()
BACKEND = "libhs" if _LIBHS_OK else "hyperscan-module" if _hs is not None else "python"


def backend_note() -> str:
    """One line for the start-up log: which hyperscan the prefilter calls."""
    if BACKEND == "libhs":
        return _LIBHS_NOTE
    why = f" ({_LIBHS_NOTE}; install Debian's libhyperscan5 for the faster direct calls)"
    return ("the hyperscan module" if BACKEND == "hyperscan-module" else "pure Python (no hyperscan)") + why


PORT_PROTOS = frozenset((6, 17, 132))
PORT_MAX = 65535


def _on_match(pid: int, start: int, end: int, flags: int, found: set) -> None:
    """hyperscan's match callback, one for every scan: the scan's result set is its context
    (returning None lets the scan go on)."""
    found.add(pid)


_NOTHING: frozenset[int] = frozenset()


_HS_CASELESS = 1                # hs.h: HS_FLAG_CASELESS, HS_FLAG_SINGLEMATCH
_HS_SINGLEMATCH = 8


class PatternDB:
    """Distinct (literal, caseless) fast patterns -> ids; `scan(data)` returns the ids present.

    With libhs (`backend` "libhs", the default where BACKEND is) the database is an
    HsDatabase (`_hsdb`) and `scan` is its own C method, set on the instance; with the
    hyperscan module ("hyperscan-module") it is that module's Database (`_db`, `_scratch`)."""

    def __init__(self, patterns: list[tuple[bytes, bool]], backend: str | None = None) -> None:
        self.patterns = patterns
        self._db = None
        self._scratch = None
        self._hsdb = None
        self._fallback = None
        self._found: set[int] = set()
        if not patterns:
            return
        backend = backend or BACKEND
        if backend == "python" or _hs is None and backend != "libhs":
            self._fallback = [(p.lower() if nc else p, nc) for p, nc in patterns]
            return
        exprs = [b"".join(b"\\x%02x" % c for c in p) for p, _ in patterns]
        flags = [_HS_SINGLEMATCH | (_HS_CASELESS if nc else 0) for _, nc in patterns]
        if backend == "libhs":
            self._use(_hot.hs_compile(exprs, flags, _NOTHING))
            return
        db = _hs.Database(mode=_hs.HS_MODE_BLOCK)
        db.compile(expressions=exprs, ids=list(range(len(exprs))), elements=len(exprs), flags=flags)
        self._db = db
        self._scratch = _hs.Scratch(db)

    def _use(self, hsdb) -> None:
        self._hsdb = hsdb
        self.scan = hsdb.scan           # type: ignore[method-assign]  # the C method itself: one call less

    def __getstate__(self) -> dict:
        """Pickled for a rule reload (bridge.reload): the database as hyperscan's own
        serialized bytes (hs_serialize_database); the scratch is per process and not sent."""
        state = dict(self.__dict__)
        db = state.pop("_db")
        state.pop("scan", None)        # libhs: the HsDatabase pickles itself (serialized) and is kept
        state["_db_bytes"] = _hs.dumpb(db) if db is not None else None
        del state["_scratch"], state["_found"]
        return state

    def __setstate__(self, state: dict) -> None:
        data = state.pop("_db_bytes")
        self.__dict__.update(state)
        self._db = self._scratch = None
        self._found = set()
        if self._hsdb is not None:
            self._use(self._hsdb)
        if data is not None:
            self._db = _hs.loadb(data, _hs.HS_MODE_BLOCK)
            self._scratch = _hs.Scratch(self._db)

    def __len__(self) -> int:
        return len(self.patterns)

    def scan(self, data: bytes) -> set[int] | frozenset[int]:
        """The ids of the patterns in `data`: a new set when there are some, else one shared
        empty frozenset (most payloads hold no fast pattern; callers only read the result).
        hyperscan is called positionally (keywords cost it an argument parse per call) with
        the module's one callback, the result set as its context."""
        if self._db is not None:
            found = self._found
            try:
                self._db.scan(data, _on_match, 0, found, self._scratch)
            except BaseException:
                found.clear()          # nothing half-filled reaches the next scan
                raise
            if not found:
                return _NOTHING
            self._found = set()
            return found
        if self._fallback is None:
            return _NOTHING
        found = set()
        low = data.lower()
        for i, (p, nc) in enumerate(self._fallback):
            if p in (low if nc else data):
                found.add(i)
        return found


def _stop(*_args) -> bool:
    """hyperscan callback that ends the scan at the first match (AnyPattern: a yes is enough)."""
    return True


_ScanTerminated = _hs.ScanTerminated if _hs is not None else None


class AnyPattern:
    """The scan of a scan offer (rules.api.Bypass "scan"): `scan(data)` is True when `data`
    holds a pattern of any of `dbs`, or -- `watch`, an app-layer state, set -- once that
    state has a parser (a UDP direction whose transaction rules wait for one).  Each
    database is asked with a callback that stops it at the first match.  `spec` is the
    same scan for the data plane's compiled ring walk (bridge/_ringpass.c) and the engine's
    compiled UDP lane (rules/_scan.h): (watch, ((hyperscan scan method, scratch, literals),
    ...)) -- with libhs (HsDatabase, its handle capsule, None) -- or None when a
    database has no hyperscan; `literals` (the module only) are the patterns of a
    database of at most SCAN_LITERALS of them (a direction's 1-2 byte ones), caseless ones
    in lower case, which the compiled scan looks for itself in a short payload."""

    __slots__ = ("dbs", "watch", "spec", "_calls")

    def __init__(self, dbs, watch=None) -> None:
        self.dbs = tuple(db for db in dbs if len(db))
        self.watch = watch
        if all(db._hsdb is not None or db._db is not None for db in self.dbs):
            # libhs: (HsDatabase.any, None), and (database, handle) for the compiled scan
            self._calls = tuple((db._hsdb.any, None) if db._hsdb is not None else (db._db.scan, db._scratch)
                                for db in self.dbs)
            # the literals only with the module: libhs itself beats the memchr walk (8 of ET's
            # 1-2 byte patterns in an 18-byte datagram: 137 against 158 ns a scan)
            self.spec = (watch, tuple((db._hsdb, db._hsdb.handle, None) if db._hsdb is not None else call + (_literals(db),)
                                      for call, db in zip(self._calls, self.dbs)))
        else:
            self._calls = None
            self.spec = None

    def __call__(self, data) -> bool:
        w = self.watch
        if w is not None and w.parser is not None:
            return True
        calls = self._calls
        if calls is None:
            return any(db.scan(data) for db in self.dbs)
        for scan, scratch in calls:
            if scratch is None:             # libhs: HsDatabase.any
                if scan(data):
                    return True
                continue
            try:
                scan(data, _stop, 0, None, scratch)
            except _ScanTerminated:
                return True
        return False

    def __reduce__(self):
        """Pickled as what it is made of (its spec holds a capsule and scratch)."""
        return AnyPattern, (self.dbs, self.watch)

    def watching(self, st) -> "AnyPattern":
        """The same scan, also True once `st` has a parser."""
        return AnyPattern(self.dbs, st)


SCAN_LITERALS = 16          # rules/_scan.h SCAN_LIT_MAX


def _literals(db: PatternDB) -> tuple | None:
    """A few patterns, as the compiled scan looks for them itself (AnyPattern.spec)."""
    if len(db.patterns) > SCAN_LITERALS:
        return None
    return tuple((p.lower() if nc else p, nc) for p, nc in db.patterns)


def _set_key(x) -> Any:
    if hasattr(x, "v4"):
        return ("a", x.v4, x.v6)
    if hasattr(x, "iv"):
        return ("p", x.iv)
    return ("o", id(x))


def header_key(sig) -> tuple:
    """Rules with equal keys accept exactly the same packet headers."""
    r = sig.rule
    return (r.direction, getattr(sig, "ports", True), r.flow_to_server, _set_key(r.src), _set_key(r.sport),
            _set_key(r.dst), _set_key(r.dport))


def _buckets(sigs) -> tuple:
    b: dict[tuple, list] = {}
    for s in sigs:
        b.setdefault(header_key(s), []).append(s)
    return tuple((v[0], tuple(v)) for v in b.values())


_V4_SPAN = float(1 << 32)
_V6_SPAN = float(1 << 128)


def _coverage(a) -> float:
    """Share of the address space an AddrSet covers (v4 share + v6 share, 0..2)."""
    return (sum(hi - lo + 1 for lo, hi in a.v4) / _V4_SPAN) + (sum(hi - lo + 1 for lo, hi in a.v6) / _V6_SPAN)


class _AddrSegments:
    """Buckets keyed on one address side: one tuple per elementary address segment (per IP version)."""

    __slots__ = ("buckets", "side", "bounds", "_seg")

    def __init__(self, buckets: list, side: str) -> None:
        self.buckets = buckets
        self.side = side
        self.bounds: dict[int, list[int]] = {}
        for ver, attr, top in ((4, "v4", (1 << 32) - 1), (6, "v6", (1 << 128) - 1)):
            b = {0}
            for rep, _ in buckets:
                for lo, hi in getattr(getattr(rep.rule, side), attr):
                    b.add(lo)
                    if hi < top:
                        b.add(hi + 1)
            self.bounds[ver] = sorted(b)
        self._seg: dict[tuple[int, int], tuple] = {}

    def lookup(self, ipver: int, addr: int) -> tuple:
        bounds = self.bounds.get(ipver)
        if bounds is None:
            return ()
        seg = bisect_right(bounds, addr) - 1
        key = (ipver, seg)
        hit = self._seg.get(key)
        if hit is None:
            rep_addr = bounds[seg]
            side = self.side
            hit = tuple(b for b in self.buckets if getattr(b[0].rule, side).contains(ipver, rep_addr))
            self._seg[key] = hit
        return hit


class AddrIndex:
    """Header buckets split by their most selective address side: a bucket whose
    destination set is narrower than its source set is found through the
    packet's destination address (and vice versa); broad or `<>` buckets are
    always checked.  Reputation-style rule sets (thousands of IP-only rules,
    one list of hosts each) then cost one lookup per packet, not one check
    per rule."""

    __slots__ = ("always", "by_src", "by_dst", "n")

    BROAD = 0.25      # a side covering more than this share of the space is not worth indexing

    def __init__(self, buckets) -> None:
        always, src, dst = [], [], []
        for b in buckets:
            r = b[0].rule
            if r.direction != "->" or not hasattr(r.src, "v4") or not hasattr(r.dst, "v4"):
                always.append(b)
                continue
            cs, cd = _coverage(r.src), _coverage(r.dst)
            if min(cs, cd) > self.BROAD:
                always.append(b)
            elif cd <= cs:
                dst.append(b)
            else:
                src.append(b)
        self.always = tuple(always)
        self.by_src = _AddrSegments(src, "src") if src else None
        self.by_dst = _AddrSegments(dst, "dst") if dst else None
        self.n = len(always) + len(src) + len(dst)

    def buckets(self, ipver: int, src: int, dst: int):
        out = self.always
        if self.by_dst is not None:
            hit = self.by_dst.lookup(ipver, dst)
            if hit:
                out = out + hit
        if self.by_src is not None:
            hit = self.by_src.lookup(ipver, src)
            if hit:
                out = out + hit
        return out


class AddrPairIndex:
    """Header buckets keyed on the packet's (source, destination) address pair.

    The address bounds of every bucket's source and destination sets (per IP
    version) cut each version's space into elementary segments; two bisects
    give the packet's (source segment, destination segment), and for each
    pair seen the buckets whose address sets accept it -- forward, or
    reversed for `<>` buckets -- are computed once and remembered.  What is
    left per bucket is the flow direction and the ports (`_header_rest`).
    Replaces one address check per bucket (reputation lists: thousands of
    IP-only rules, hundreds of distinct address sets) with one lookup."""

    __slots__ = ("buckets", "index", "bounds", "_memo")

    MEMO_MAX = 1 << 16          # distinct pairs remembered before starting over (bounded memory)

    def __init__(self, buckets, index: "AddrIndex | None" = None) -> None:
        self.buckets = buckets
        self.index = index
        self.bounds: dict[int, list[int]] = {}
        for ver, attr, top in ((4, "v4", (1 << 32) - 1), (6, "v6", (1 << 128) - 1)):
            b = {0}
            for rep, _ in buckets:
                r = rep.rule
                for side in (r.src, r.dst):
                    for lo, hi in getattr(side, attr):
                        b.add(lo)
                        if hi < top:
                            b.add(hi + 1)
            self.bounds[ver] = sorted(b)
        self._memo: dict[tuple[int, int, int], tuple] = {}

    @staticmethod
    def usable(buckets) -> bool:
        return all(hasattr(rep.rule.src, "v4") and hasattr(rep.rule.dst, "v4") for rep, _ in buckets)

    def lookup(self, ipver: int, src: int, dst: int) -> tuple | None:
        """((rep, sigs, forward_ok, reverse_ok, free), ...): the buckets whose address sets accept
        the pair; `free` when neither flow direction nor ports need a check.  None for an IP
        version other than 4 and 6 (the caller checks each bucket then)."""
        bounds = self.bounds.get(ipver)
        if bounds is None:
            return None
        si = bisect_right(bounds, src) - 1
        di = bisect_right(bounds, dst) - 1
        key = (ipver, si, di)
        hit = self._memo.get(key)
        if hit is None:
            hit = self._pair(ipver, bounds[si], bounds[di])
            if len(self._memo) >= self.MEMO_MAX:
                self._memo.clear()
            self._memo[key] = hit
        return hit

    def _pair(self, ipver: int, s: int, d: int) -> tuple:
        cands = self.buckets if self.index is None else self.index.buckets(ipver, s, d)
        out = []
        for rep, sigs in cands:
            r = rep.rule
            fwd = r.src.contains(ipver, s) and r.dst.contains(ipver, d)
            rev = r.direction != "->" and r.src.contains(ipver, d) and r.dst.contains(ipver, s)
            if fwd or rev:
                free = r.flow_to_server is None and (
                    not getattr(rep, "ports", True)
                    or (getattr(r.sport, "is_any", False) and getattr(r.dport, "is_any", False)))
                out.append((rep, sigs, fwd, rev, free))
        return tuple(out)


class Group:
    """Rules of one header group: `plain` always apply, `by_pid` through the prefilter.

    `plain_hdr` (and `pid_hdr` per pattern id) hold the rules bucketed by
    identical header (direction, flow direction, address and port sets): a packet's header is checked once per bucket, not
    once per rule -- rule sets reuse a handful of $HOME_NET/$EXTERNAL_NET/any
    combinations, so this keeps the header cost flat as rules are added."""

    __slots__ = ("plain", "plain_hdr", "plain_idx", "plain_pairs", "by_pid", "pid_hdr", "size")

    def __init__(self, sigs: Iterable[Any]) -> None:
        plain = []
        by_pid: dict[int, list] = {}
        n = 0
        for s in sigs:
            n += 1
            if s.pid < 0:
                plain.append(s)
            else:
                by_pid.setdefault(s.pid, []).append(s)
        self.plain = tuple(plain)
        self.plain_hdr = _buckets(plain)
        self.plain_idx = AddrIndex(self.plain_hdr) if len(self.plain_hdr) > 8 else None
        self.plain_pairs = (AddrPairIndex(self.plain_hdr, self.plain_idx)
                            if len(self.plain_hdr) > 2 and AddrPairIndex.usable(self.plain_hdr) else None)
        self.by_pid = {k: tuple(v) for k, v in by_pid.items()}
        self.pid_hdr = {k: _buckets(v) for k, v in by_pid.items()}   # same buckets per pattern id
        self.size = n


_EMPTY = Group(())


class _PortIndex:
    """Rules keyed on one port side; one Group per elementary port segment."""

    __slots__ = ("sigs", "side", "bounds", "_seg", "_port")

    def __init__(self, sigs: list, side: str) -> None:
        self.sigs = sigs
        self.side = side                   # "dport" | "sport"
        b = {0}
        for s in sigs:
            for lo, hi in getattr(s.rule, side).iv:
                b.add(lo)
                if hi < PORT_MAX:
                    b.add(hi + 1)
        self.bounds = sorted(b)
        self._seg: dict[int, Group] = {}
        self._port: dict[int, Group] = {}

    def warm(self) -> None:
        """Build the Group of every port segment now (one sweep over the rules) rather than on
        the first packet to each port."""
        bounds = self.bounds
        per: list[list] = [[] for _ in bounds]
        side = self.side
        for s in self.sigs:                       # signature order is kept within each segment
            for lo, hi in getattr(s.rule, side).iv:
                i = bisect_right(bounds, lo) - 1
                while i < len(bounds) and bounds[i] <= hi:
                    per[i].append(s)
                    i += 1
        for seg, sel in enumerate(per):
            if seg not in self._seg:
                self._seg[seg] = Group(sel) if sel else _EMPTY

    def group(self, port: int) -> Group:
        g = self._port.get(port)
        if g is not None:
            return g
        seg = bisect_right(self.bounds, port) - 1
        g = self._seg.get(seg)
        if g is None:
            rep = self.bounds[seg]
            side = self.side
            g = Group(s for s in self.sigs if getattr(s.rule, side).contains(rep))
            if not g.size:
                g = _EMPTY
            self._seg[seg] = g
        self._port[port] = g
        return g


class _ProtoIndex:
    __slots__ = ("always", "by_dport", "by_sport", "ports")

    def __init__(self, sigs: list, ports: bool) -> None:
        self.ports = ports
        if not ports:
            self.always = Group(sigs)
            self.by_dport = self.by_sport = None
            return
        always, dk, sk = [], [], []
        for s in sigs:
            r = s.rule
            d_any = getattr(r.dport, "is_any", False) or not hasattr(r.dport, "iv")
            s_any = getattr(r.sport, "is_any", False) or not hasattr(r.sport, "iv")
            if r.direction != "->" or (d_any and s_any):
                always.append(s)
            elif not d_any:
                dk.append(s)
            else:
                sk.append(s)
        self.always = Group(always)
        self.by_dport = _PortIndex(dk, "dport") if dk else None
        self.by_sport = _PortIndex(sk, "sport") if sk else None


def short_anchor(rule, pat: bytes, nocase: bool) -> tuple[int, int]:
    """Where in a buffer the rule's 1-2 byte fast pattern `pat` must lie for the rule to
    match (rules.payload.content_anchor): `content:"|18 03|"; depth:2;` can only match in
    the first two bytes of the payload or of a stream buffer, each on its own.  (0, -1):
    anywhere.  Suricata's hyperscan matcher keeps a pattern's offset and depth with it
    too, so random bytes holding |18 03| somewhere in a segment make no candidate there."""
    at = content_anchor(rule.payload.items, pat, nocase) if rule.payload is not None else None
    return at if at is not None else (0, -1)


class RuleIndex:
    """`groups(pkt)` -> the Groups whose rules can apply to the packet's header;
    `pattern_db` is shared by all groups.  Rules whose fast pattern is SHORT bytes or
    less are not in it: they are plain rules of their group with `fp_short` set to
    (pattern, caseless, short id, start, end): the pattern the payload must contain, and
    where in a buffer when a content anchors it (short_anchor; end -1: anywhere).  The
    engine looks for each flow direction's set with a database of its own, or `bytes in`
    tests (rules.detect.Detector.short_candidates)."""

    SHORT = 2

    def __init__(self, sigs: list) -> None:
        self.sigs = sigs
        pats: dict[tuple[bytes, bool], int] = {}
        short: dict[tuple[bytes, bool], int] = {}
        self.short = 0
        for s in sigs:
            fp = s.rule.fast_pattern
            s.fp_short = None
            if fp:
                key = (bytes(fp).lower() if s.rule.fast_pattern_nocase else bytes(fp), bool(s.rule.fast_pattern_nocase))
                if len(key[0]) <= self.SHORT:
                    # a 1-2 byte pattern is in nearly every payload: in the main database it
                    # costs a Python callback on every scan; the rule is a plain candidate of
                    # its group instead, kept when the payload holds the pattern (engine: a
                    # `bytes in` test, or a database of the flow direction's short patterns)
                    # -- where its content can match, when that is a fixed place
                    s.pid = -1
                    start, end = short_anchor(s.rule, key[0], key[1])
                    s.fp_short = key + (short.setdefault(key, len(short)), start, end)
                    self.short += 1
                else:
                    s.pid = pats.setdefault(key, len(pats))
            else:
                s.pid = -1
        self.pattern_db = PatternDB(list(pats))
        self._protos: dict[int, _ProtoIndex] = {}

    def _proto(self, proto: int) -> _ProtoIndex:
        idx = self._protos.get(proto)
        if idx is None:
            sel = [s for s in self.sigs if s.rule.ip_protos is None or proto in s.rule.ip_protos]
            idx = _ProtoIndex(sel, proto in PORT_PROTOS)
            self._protos[proto] = idx
        return idx

    WARM_PROTOS = (6, 17, 1, 58)

    def warm(self, protos: Iterable[int] = WARM_PROTOS) -> None:
        """Build the indexes of `protos` (default TCP, UDP, ICMP, ICMPv6) and all their port
        groups now: the first packets then pay no build cost (otherwise lazy, per protocol
        and port segment)."""
        for proto in protos:
            idx = self._proto(proto)
            for pi in (idx.by_dport, idx.by_sport):
                if pi is not None:
                    pi.warm()

    def groups(self, proto: int, sport: int, dport: int) -> list[Group]:
        idx = self._proto(proto)
        out = [idx.always] if idx.always.size else []
        if idx.ports:
            if idx.by_dport is not None:
                g = idx.by_dport.group(dport)
                if g.size:
                    out.append(g)
            if idx.by_sport is not None:
                g = idx.by_sport.group(sport)
                if g.size:
                    out.append(g)
        return out

    def stats(self) -> dict[str, int]:
        return {"prefilter.patterns": len(self.pattern_db), "prefilter.short_pattern_rules": self.short,
                "prefilter.proto_groups": len(self._protos)}
