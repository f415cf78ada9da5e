"""The payload chain: content / pcre / isdataat / byte_test / byte_jump in rule order.

`PayloadChain.match(buf)` walks the items left to right keeping the end of the
previous match (`prev`), which relative items (distance/within, pcre ``R``,
``isdataat:N,relative``, ``byte_test ... relative``) are measured from.  When a
relative item fails, the content (or pcre) before it is retried at its next
occurrence -- the same backtracking Suricata's content inspection does -- with
a step budget so a hostile payload cannot make it run away.

Windows, as Suricata computes them:
- absolute content: ``[offset, offset + depth)``;
- relative content: starts at ``prev + distance`` (clamped at 0) and, with
  ``within``, ends at ``prev + distance + within``;
- ``startswith`` is depth = len(pattern) at 0; ``endswith`` anchors the end of
  the match at the end of the buffer;
- a negated item never moves ``prev``; nor do isdataat and byte_test.

Caseless contents are looked up in ``buf.lower()``, computed at most once per
`match` call and only when a caseless item is reached (ASCII folding, as
Suricata's nocase).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rules.keywords.pcre import PcreRegex

# PayloadChain.match_buffer remembers its last value up to this many bytes
LAST_VALUE_MAX = 256

# Suricata bounds recursive content inspection too (inspection-recursion-limit).
STEP_BUDGET = 3000


@dataclass(slots=True)
class Content:
    pattern: bytes
    negated: bool = False
    nocase: bool = False
    offset: int | None = None
    depth: int | None = None
    distance: int | None = None
    within: int | None = None
    startswith: bool = False
    endswith: bool = False
    fast_pattern: bool = False
    fast_pattern_only: bool = False
    fast_pattern_chop: tuple[int, int] | None = None
    rawbytes: bool = False
    text: str = ""                 # as written, for messages
    column: int = 0
    lpattern: bytes = b""          # pattern.lower() when nocase

    @property
    def relative(self) -> bool:
        return self.distance is not None or self.within is not None


@dataclass(slots=True)
class Pcre:
    regex: "PcreRegex"               # rules.keywords.pcre: PCRE2, a limit hit is no match
    source: str
    negated: bool = False
    relative: bool = False
    anchored: bool = False


@dataclass(slots=True)
class IsDataAt:
    n: int
    negated: bool = False
    relative: bool = False


@dataclass(slots=True)
class ByteTest:
    nbytes: int
    op: str                        # < > = <= >= & ^
    negated: bool
    value: int
    offset: int
    relative: bool = False
    little: bool = False
    base: int | None = None        # None: binary; 8/10/16: ASCII string
    bitmask: int | None = None


@dataclass(slots=True)
class ByteJump:
    nbytes: int
    offset: int
    relative: bool = False
    little: bool = False
    base: int | None = None
    multiplier: int = 1
    align: bool = False
    from_beginning: bool = False
    from_end: bool = False
    post_offset: int = 0
    bitmask: int | None = None


@dataclass(slots=True)
class BufSize:
    """bsize: a condition on the whole (sticky) buffer's length; no position."""
    pred: object
    text: str = ""
    relative: bool = False


class Step:
    """A payload item defined by a keyword module (rules.keywords.base64: base64_decode):
    `step(chain, i, buf, prev, state)` decides whether `chain` matches `buf` from item `i` on,
    the previous match ending at `prev` (it may go on with `chain._m(i + 1, ...)`).
    `relative` says whether the content or pcre before it is retried at its next occurrence
    when it fails, as for the built-in items."""

    __slots__ = ()
    relative = False

    def step(self, chain: "PayloadChain", i: int, buf: bytes, prev: int, state: list) -> bool:
        raise NotImplementedError


Item = Content | Pcre | IsDataAt | ByteTest | ByteJump | BufSize | Step


def _read_int(buf: bytes, start: int, nbytes: int, little: bool,
              base: int | None) -> tuple[int, int] | None:
    """(value, bytes consumed) of the integer at `start`, or None (no match).

    Binary reads consume all `nbytes`.  With ``string`` Suricata converts the
    `nbytes` characters as C's strtoull does: leading white space, an optional
    sign (a minus wraps modulo 2**64), ``0x`` before hex digits, then the
    longest run of digits valid in the base; nothing converted is no match.
    byte_jump moves past the characters actually converted, not all `nbytes`
    (checked with suricata -r: "3 " as 2 bytes of dec is 3 and consumes 1)."""
    if nbytes == 0 and base is not None:     # byte_test:0,...,string: the rest of the buffer
        nbytes = len(buf) - start
        if nbytes <= 0:
            return None
    if start < 0 or start + nbytes > len(buf):
        return None
    raw = buf[start:start + nbytes]
    if base is None:
        return int.from_bytes(raw, "little" if little else "big"), nbytes
    return _strtoull(raw, base)


_SPACE = b" \t\n\v\f\r"
_DIGITS = {8: b"01234567", 10: b"0123456789", 16: b"0123456789abcdefABCDEF"}
_U64 = (1 << 64) - 1


def _strtoull(raw: bytes, base: int) -> tuple[int, int] | None:
    n = len(raw)
    digits = _DIGITS[base]
    i = 0
    while i < n and raw[i] in _SPACE:
        i += 1
    neg = False
    if i < n and raw[i] in b"+-":
        neg = raw[i] == 0x2D
        i += 1
    if base == 16 and raw[i:i + 2] in (b"0x", b"0X") and i + 2 < n and raw[i + 2] in digits:
        i += 2
    j = i
    while j < n and raw[j] in digits:
        j += 1
    if j == i:
        return None
    val = int(raw[i:j], base)
    if val > _U64:
        return None                # ERANGE: Suricata treats it as a failed conversion
    return ((-val) & _U64 if neg else val), j


def _mask(val: int, mask: int | None) -> int:
    if mask is None:
        return val
    val &= mask
    shift = (mask & -mask).bit_length() - 1 if mask else 0
    return val >> shift


def _compare(op: str, val: int, ref: int) -> bool:
    if op == "=":
        return val == ref
    if op == "<":
        return val < ref
    if op == ">":
        return val > ref
    if op == "<=":
        return val <= ref
    if op == ">=":
        return val >= ref
    if op == "&":
        return (val & ref) != 0
    if op == "^":
        return (val ^ ref) != 0
    raise ValueError(op)


def _prefix_reach(items: tuple) -> int | None:
    """PayloadChain.prefix_reach for `items` (windows as PayloadChain._window)."""
    need = 0
    prev = 0                       # the furthest the last positive match can end
    for it in items:
        if type(it) is not Content or it.endswith:
            return None
        if it.distance is not None or it.within is not None:
            if it.within is None:
                return None
            end = max(0, prev + (it.distance or 0) + it.within)
        else:
            if it.depth is None:
                return None
            end = (it.offset or 0) + it.depth
        need = max(need, end)
        if not it.negated:
            prev = end
    return need


def content_anchor(items, lit: bytes, nocase: bool) -> tuple[int, int] | None:
    """Where in a buffer `lit` -- the fast pattern of a chain of `items`, a content's whole
    pattern -- must lie for the chain to match: (start, end) when that content is positive
    and its window a fixed place (PayloadChain._window): absolute with a depth, or relative
    with a within before any item has moved the previous match's end from 0 (a chain's
    first `content:"|ac ed|"; within:2;`).  Every positive content of a chain must match in
    its window, so a buffer without `lit` in [start, end) cannot match.  None: anywhere.
    A caseless `lit` is compared caseless."""
    key = lit.lower() if nocase else lit
    at_zero = True                 # no item before has moved `prev` off 0
    for it in items:
        if type(it) is Content:
            if not it.negated and not it.fast_pattern_chop and it.nocase == nocase \
                    and (it.pattern.lower() if nocase else it.pattern) == key:
                if not it.relative and it.depth is not None:
                    start = it.offset or 0
                    return start, start + it.depth
                if it.relative and at_zero and it.within is not None:
                    dist = it.distance or 0
                    return max(0, dist), max(0, dist + it.within)
            if not it.negated:
                at_zero = False
        elif type(it) is not IsDataAt and type(it) is not ByteTest and type(it) is not BufSize \
                and not (type(it) is Pcre and it.negated):
            at_zero = False        # a pcre or byte_jump moves it
    return None


def _is_relative(it: Item) -> bool:
    return it.relative  # every item type has it (Content as a property)


class PayloadChain:
    """Ordered payload items; `match(buf)` is what the engine calls.

    `buffers` are sticky-buffer sub-chains: (name, extractor, chain), where
    extractor(payload, pkt) returns the buffers to inspect (e.g. the DNS query
    names, the TCP header); each sub-chain must match at least one of them.  Relative
    positions never cross buffers, so each buffer is matched on its own."""

    __slots__ = ("items", "_next_rel", "_any_nocase", "buffers", "_cspec", "_last", "_reach")

    def __init__(self, items: list[Item], buffers: list | tuple = ()) -> None:
        self.buffers = tuple(buffers)
        self.items = tuple(items)
        # retry a match at its next occurrence when the next item is relative, or the
        # next content/pcre is: an absolute isdataat/byte_test in between does not end
        # the dependency, an absolute content does (suricata -r: content:"b"; isdataat:3;
        # content:!"1a"; distance:-2; tries the later "b"s; content:"1"; content:!"b1";
        # startswith; isdataat:!3,relative; does not retry "1")
        self._next_rel = tuple(
            (i + 1 < len(items) and _is_relative(items[i + 1]))
            or next((_is_relative(it) for it in items[i + 1:] if isinstance(it, (Content, Pcre))), False)
            for i in range(len(items)))
        self._any_nocase = any(isinstance(i, Content) and i.nocase for i in items)
        # a chain of contents only is matched by the compiled twin of _m (rules/_chain.c);
        # its spec is made at the first match, once the parser is done with the items (the
        # fast pattern choice may still change a content after the chain is made)
        self._cspec: tuple | None | bool = False
        # match_buffer's last short value and its answer, for a chain the compiled twin does
        # not match (a pcre, byte_test, ...): the same Host, User-Agent or method comes back
        # transaction after transaction, and the chain is a function of the value alone
        self._last: tuple | None = (None, False) if any(type(i) is not Content for i in items) else None
        self._reach: int | None | bool = False      # prefix_reach(), worked out at its first use

    def prefix_reach(self) -> int | None:
        """How many leading bytes of a buffer the chain's answer depends on, when that is
        bounded: every item a content (none anchored at the end) with a window that ends at
        a fixed place (an absolute one with a depth, a relative one with a within, counted
        from the furthest the match before it can end).  A buffer that only grows (a body)
        holding at least that many bytes has its final answer.  None: no such bound (a
        pcre, isdataat, byte_test, an open window, sticky sub-buffers)."""
        reach = self._reach
        if reach is False:
            reach = self._reach = _prefix_reach(self.items) if not self.buffers else None
        return reach

    def __len__(self) -> int:
        return len(self.items) + sum(len(sub) for _, _, sub in self.buffers)

    def __repr__(self) -> str:
        return f"PayloadChain({list(self.items)!r})"

    def match(self, buf: bytes | memoryview, pkt=None) -> bool:
        """Does the chain match `buf` (the packet payload or a stream buffer)?  Sticky
        buffers are extracted from `buf`, or from `pkt` for packet-header buffers."""
        if not isinstance(buf, bytes):
            buf = bytes(buf)
        if not buf and not self.buffers:
            return False   # Suricata does not run payload inspection on an empty payload
        try:
            if self.items and (not buf or not self._run(buf)):
                return False
            for _name, extract, sub in self.buffers:
                if not any(sub._match_one(b) for b in extract(buf, pkt)):
                    return False
            return True
        except RecursionError:
            return False

    def _match_one(self, buf: bytes) -> bool:
        """Match this chain on one extracted buffer (which may be empty)."""
        return self._run(buf)

    def match_buffer(self, buf: bytes) -> bool:
        """Match this chain on an app-layer buffer: an empty one is inspected too
        (`http.uri; bsize:0;` matches an empty URI, as in Suricata).  A chain with more
        than contents answers a value of up to LAST_VALUE_MAX bytes that equals the last
        one it was given without matching again."""
        last = self._last
        if last is not None and type(buf) is bytes and len(buf) <= LAST_VALUE_MAX:
            if buf == last[0]:
                return last[1]
            try:
                got = self._run(buf)
            except RecursionError:
                got = False
            self._last = (buf, got)
            return got
        try:
            return self._run(buf)
        except RecursionError:
            return False

    def _run(self, buf: bytes) -> bool:
        """The items matched on `buf` from its start (_m), by the compiled twin when the
        chain is contents only and `buf` is bytes."""
        spec = self._cspec
        if spec is False:
            spec = self._cspec = content_spec(self.items) if _CHAIN_MATCH is not None else None
        if spec is not None and type(buf) is bytes:
            return _CHAIN_MATCH(buf, spec, self._next_rel, STEP_BUDGET)
        return self._m(0, buf, 0, [STEP_BUDGET, None])

    def _lower(self, buf: bytes, state: list) -> bytes:
        low = state[1]
        if low is None:
            low = state[1] = buf.lower()
        return low

    def _m(self, i: int, buf: bytes, prev: int, state: list) -> bool:
        items = self.items
        while True:
            if i == len(items):
                return True
            state[0] -= 1
            if state[0] < 0:
                return False
            it = items[i]
            t = type(it)
            if t is Content:
                return self._content(i, it, buf, prev, state)
            if t is Pcre:
                return self._pcre(i, it, buf, prev, state)
            if t is IsDataAt:
                # Suricata: absolute N needs a byte at offset N; relative N needs N bytes after prev
                ok = (prev + it.n <= len(buf)) if it.relative else (it.n < len(buf))
                if ok == it.negated:
                    return False
                i += 1
                continue
            if t is ByteTest:
                start = (prev if it.relative else 0) + it.offset
                got = _read_int(buf, start, it.nbytes, it.little, it.base)
                if got is None:
                    return False
                val = got[0]
                ok = _compare(it.op, _mask(val, it.bitmask), it.value)
                if ok == it.negated:
                    return False
                i += 1
                continue
            if t is BufSize:
                if not it.pred(len(buf)):
                    return False
                i += 1
                continue
            if t is ByteJump:
                start = (prev if it.relative else 0) + it.offset
                got = _read_int(buf, start, it.nbytes, it.little, it.base)
                if got is None:
                    return False
                val, used = got
                val = _mask(val, it.bitmask) * it.multiplier
                if it.align and val % 4:
                    val += 4 - val % 4
                if it.from_end:
                    pos = len(buf) + val + it.post_offset
                elif it.from_beginning:
                    pos = val + it.post_offset
                else:
                    pos = start + used + val + it.post_offset
                if pos < 0 or pos > len(buf):
                    return False
                prev = pos
                i += 1
                continue
            if isinstance(it, Step):
                return it.step(self, i, buf, prev, state)
            raise TypeError(f"unknown payload item {it!r}")

    def _window(self, it: Content, n: int, prev: int) -> tuple[int, int]:
        if it.distance is not None or it.within is not None:
            dist = it.distance or 0
            start = prev + dist
            end = n if it.within is None else min(n, prev + dist + it.within)
            if start < 0:
                start = 0
        else:
            start = it.offset or 0
            end = n if it.depth is None else min(n, start + it.depth)
        return start, end

    def _content(self, i: int, it: Content, buf: bytes, prev: int, state: list) -> bool:
        n = len(buf)
        start, end = self._window(it, n, prev)
        if it.nocase:
            hay, pat = self._lower(buf, state), it.lpattern
        else:
            hay, pat = buf, it.pattern
        plen = len(pat)
        if it.endswith:
            if it.negated:
                # one search, as Suricata inspects a negated content: only its first
                # occurrence in the window is held to the end of the buffer (suricata -r:
                # content:!"b"; endswith; matches "xbxb", whose first b is not at the end)
                first = hay.find(pat, start, end) if end - start >= plen else -1
                found = first >= 0 and first + plen == n
                return not found and self._m(i + 1, buf, prev, state)
            pos = n - plen
            found = end == n and pos >= start and hay[pos:n] == pat
            return found and self._m(i + 1, buf, pos + plen, state)
        pos = hay.find(pat, start, end) if end - start >= plen else -1
        if it.negated:
            return pos < 0 and self._m(i + 1, buf, prev, state)
        retry = self._next_rel[i]
        while pos >= 0:
            if self._m(i + 1, buf, pos + plen, state):
                return True
            if not retry or state[0] < 0:
                return False
            pos = hay.find(pat, pos + 1, end)
        return False

    def _pcre(self, i: int, it: Pcre, buf: bytes, prev: int, state: list) -> bool:
        base = prev if it.relative else 0
        view = memoryview(buf)[base:] if base else buf
        rx = it.regex
        m = rx.match(view) if it.anchored else rx.search(view)      # (start, end) or None
        if it.negated:
            return m is None and self._m(i + 1, buf, prev, state)
        retry = self._next_rel[i]
        while m is not None:
            if self._m(i + 1, buf, base + m[1], state):
                return True
            if not retry or it.anchored or state[0] < 0:
                return False
            nxt = m[0] + 1
            if nxt > len(view):
                return False
            m = rx.search(view, nxt)
        return False


# rules/_chain.c's flags for a content (content_spec)
C_NOCASE, C_NEGATED, C_ENDSWITH, C_RELATIVE, C_DEPTH, C_WITHIN = 1, 2, 4, 8, 16, 32


def content_spec(items: tuple) -> tuple | None:
    """What rules/_chain.c's match reads of a chain made only of Content items, one tuple
    per item (pattern, flags, offset, depth, distance, within): the pattern as searched
    (lower-case when nocase), absent numbers as 0.  None when an item is not a Content."""
    out = []
    for it in items:
        if type(it) is not Content:
            return None
        flags = ((C_NOCASE if it.nocase else 0) | (C_NEGATED if it.negated else 0)
                 | (C_ENDSWITH if it.endswith else 0) | (C_RELATIVE if it.relative else 0)
                 | (C_DEPTH if it.depth is not None else 0) | (C_WITHIN if it.within is not None else 0))
        out.append((it.lpattern if it.nocase else it.pattern, flags, it.offset or 0, it.depth or 0,
                    it.distance or 0, it.within or 0))
    return tuple(out)


try:                                         # the compiled twin (built by the install)
    from rules._chain import match as _CHAIN_MATCH
except ImportError:                          # (a checkout used without `pip install`)
    _CHAIN_MATCH = None


def pattern_strength(pat: bytes) -> int:
    """Byte-diversity score used to break fast_pattern length ties (first
    occurrence of a letter scores 3, of another printable byte or 0x00/0x01/0xff
    4, of anything else 6; a repeated byte 1)."""
    seen: set[int] = set()
    s = 0
    for b in pat:
        if b in seen:
            s += 1
            continue
        seen.add(b)
        if (65 <= b <= 90) or (97 <= b <= 122):
            s += 3
        elif 32 <= b <= 126 or b in (0, 1, 255):
            s += 4
        else:
            s += 6
    return s


def choose_fast_pattern(items: list[Item]) -> Content | None:
    """The content the prefilter should look for: the explicit `fast_pattern`,
    else the longest positive content (ties: highest pattern strength, then
    the first in the rule).  Negated contents are only candidates when the rule
    has no positive one."""
    contents = [c for c in items if isinstance(c, Content)]
    for c in contents:
        if c.fast_pattern:
            return c
    pos = [c for c in contents if not c.negated]
    cands = pos or contents
    best = None
    for c in cands:
        key = (len(c.pattern), pattern_strength(c.pattern))
        if best is None or key > best[0]:
            best = (key, c)
    return best[1] if best else None
