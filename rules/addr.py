"""Address and port sets of a rule header, compiled to integer intervals.

Grammar (Suricata's): ``any``, an IPv4/IPv6 address, CIDR (``/len`` or an
IPv4 netmask), a range ``a-b``, a variable ``$NAME`` (address-groups /
port-groups of the config, expanded recursively), a list ``[x, y, ...]``
(nested), and ``!`` in front of any of these.  As Suricata, negation works
per IP family: ``!X`` complements X only in the families X names
(``!1.2.3.4`` is every IPv4 address but one and no IPv6 address); inside a
list, per family, the negated members are subtracted from the union of the
positive ones, or from the whole family when the list has no positive member
of that family (``[2001:db8::/32,!1.2.3.0/24]`` is that IPv6 block plus every
IPv4 address outside 1.2.3.0/24).  A variable whose value starts with ``!``
is a negated member where it is used (``[$EXTERNAL_NET,1.2.3.4]`` with
``EXTERNAL_NET: !$HOME_NET`` is ``[!$HOME_NET,1.2.3.4]``), and nested lists
are flattened into the enclosing one (``[a,[b,!c]]`` is ``[a,b,!c]``), while a
negated list or variable is evaluated first and subtracted as one set.  All
checked with suricata -r (tests/replay/differential random_header).

Ports are the same with ``N``, ``a:b``, ``a:``, ``:b`` over 0..65535.

Sets are kept as sorted, merged, inclusive ``(lo, hi)`` tuples per IP version;
`contains` is a bisect (or a frozenset lookup for short port lists), so the
engine never touches `ipaddress` objects on the hot path.
"""
from __future__ import annotations

import ipaddress
from bisect import bisect_right
from typing import Callable, Iterable

from rules.errors import RuleError

V4_MAX = (1 << 32) - 1
V6_MAX = (1 << 128) - 1
PORT_MAX = 65535

Intervals = tuple[tuple[int, int], ...]


def _merge(iv: Iterable[tuple[int, int]]) -> Intervals:
    out: list[list[int]] = []
    for lo, hi in sorted(iv):
        if out and lo <= out[-1][1] + 1:
            if hi > out[-1][1]:
                out[-1][1] = hi
        else:
            out.append([lo, hi])
    return tuple((a, b) for a, b in out)


def _subtract(a: Intervals, b: Intervals) -> Intervals:
    out: list[tuple[int, int]] = []
    for lo, hi in a:
        cur = lo
        for blo, bhi in b:
            if bhi < cur or blo > hi:
                continue
            if blo > cur:
                out.append((cur, blo - 1))
            cur = max(cur, bhi + 1)
            if cur > hi:
                break
        if cur <= hi:
            out.append((cur, hi))
    return tuple(out)


def _contains(starts: tuple[int, ...], iv: Intervals, x: int) -> bool:
    i = bisect_right(starts, x) - 1
    return i >= 0 and x <= iv[i][1]


class AddrSet:
    """Compiled address set: `contains(ipver, addr)` with addr an int."""

    __slots__ = ("v4", "v6", "_s4", "_s6", "is_any", "text")

    def __init__(self, v4: Intervals, v6: Intervals, text: str = "") -> None:
        self.v4 = v4
        self.v6 = v6
        self._s4 = tuple(lo for lo, _ in v4)
        self._s6 = tuple(lo for lo, _ in v6)
        self.is_any = v4 == ((0, V4_MAX),) and v6 == ((0, V6_MAX),)
        self.text = text

    def contains(self, ipver: int, addr: int) -> bool:
        if self.is_any:
            return True
        if ipver == 4:
            return _contains(self._s4, self.v4, addr)
        if ipver == 6:
            return _contains(self._s6, self.v6, addr)
        return False

    def __repr__(self) -> str:
        return f"AddrSet({self.text!r})"


class PortSet:
    """Compiled port set: `contains(port)`."""

    __slots__ = ("iv", "_starts", "_small", "is_any", "text")

    def __init__(self, iv: Intervals, text: str = "") -> None:
        self.iv = iv
        self._starts = tuple(lo for lo, _ in iv)
        self.is_any = iv == ((0, PORT_MAX),)
        n = sum(hi - lo + 1 for lo, hi in iv)
        self._small = frozenset(p for lo, hi in iv for p in range(lo, hi + 1)) if n <= 256 else None
        self.text = text

    def contains(self, port: int) -> bool:
        if self.is_any:
            return True
        if self._small is not None:
            return port in self._small
        return _contains(self._starts, self.iv, port)

    def __repr__(self) -> str:
        return f"PortSet({self.text!r})"


# ---------------------------------------------------------------------------
# generic list grammar shared by addresses and ports


class _Err(Exception):
    """Internal: message + offset in the text being parsed."""

    def __init__(self, msg: str, pos: int) -> None:
        self.msg = msg
        self.pos = pos


Entries = list[tuple[bool, tuple[Intervals, ...]]]


class _ListParser:
    """Recursive descent over ``!``, ``[...]``, ``$VAR`` and leaf tokens.

    A value is a tuple of interval tuples (one per "dimension": v4, v6 for
    addresses; one for ports), so union/difference work component-wise.
    Parsing yields flat (negated, value) entries, as Suricata flattens nested
    lists and variables into the list they appear in; a negated list or
    variable is one negated entry (its own evaluated set); `evaluate` then
    combines the entries per dimension."""

    def __init__(self, text: str, universe: tuple[Intervals, ...], leaf: Callable[[str], tuple[Intervals, ...]],
                 resolve: Callable[[str, int], Entries]) -> None:
        self.s = text
        self.i = 0
        self.universe = universe
        self.leaf = leaf
        self.resolve = resolve

    def ws(self) -> None:
        while self.i < len(self.s) and self.s[self.i] in " \t":
            self.i += 1

    def parse(self) -> Entries:
        self.ws()
        v = self.expr()
        self.ws()
        if self.i != len(self.s):
            raise _Err(f"unexpected '{self.s[self.i]}'", self.i)
        return v

    def evaluate(self, entries: Entries) -> tuple[Intervals, ...]:
        """Per dimension: the positive entries minus the negated ones; with no
        positive entry, the whole dimension minus the negated ones, but only
        when some negated entry names that dimension (``!1.2.3.4`` holds no
        IPv6 address, as in Suricata)."""
        out = []
        for d, u in enumerate(self.universe):
            p = _merge(x for neg, v in entries if not neg for x in v[d])
            n = _merge(x for neg, v in entries if neg for x in v[d])
            out.append(_subtract(p if p else (u if n else ()), n))
        return tuple(out)

    def expr(self) -> Entries:
        self.ws()
        if self.i < len(self.s) and self.s[self.i] == "!":
            self.i += 1
            # a negated list or variable is evaluated as one set, then subtracted
            return [(True, self.evaluate(self.expr()))]
        return self.item()

    def item(self) -> Entries:
        s = self.s
        if self.i >= len(s):
            raise _Err("missing value", self.i)
        c = s[self.i]
        if c == "[":
            open_at = self.i
            self.i += 1
            entries: Entries = []
            while True:
                self.ws()
                if self.i >= len(s):
                    raise _Err("unterminated list: missing ']'", open_at)
                if s[self.i] == "]":
                    if not entries:
                        raise _Err("empty list", open_at)
                    raise _Err("list ends with ','", self.i)
                entries.extend(self.expr())
                self.ws()
                if self.i >= len(s):
                    raise _Err("unterminated list: missing ']'", open_at)
                if s[self.i] == ",":
                    self.i += 1
                    continue
                if s[self.i] == "]":
                    self.i += 1
                    break
                raise _Err(f"expected ',' or ']' in list, found '{s[self.i]}'", self.i)
            return entries
        start = self.i
        while self.i < len(s) and s[self.i] not in ",] \t[!":
            self.i += 1
        tok = s[start:self.i]
        if not tok:
            raise _Err(f"unexpected '{c}'", start)
        if tok == "any":
            return [(False, self.universe)]
        if tok.startswith("$"):
            return self.resolve(tok[1:], start)
        try:
            return [(False, self.leaf(tok))]
        except ValueError as e:
            raise _Err(str(e), start) from None


def _v4_fast(tok: str) -> int | None:
    """Dotted-quad to int without ipaddress (the common case); None: let
    ipaddress decide (and word the error)."""
    parts = tok.split(".")
    if len(parts) != 4:
        return None
    n = 0
    for p in parts:
        if not p.isdigit() or len(p) > 3 or (len(p) > 1 and p[0] == "0"):
            return None
        v = int(p)
        if v > 255:
            return None
        n = (n << 8) | v
    return n


def _addr_leaf(tok: str) -> tuple[Intervals, Intervals]:
    addr, slash, plen = tok.partition("/")
    if ":" not in tok and "-" not in tok:
        a = _v4_fast(addr)
        if a is not None and (not slash or (plen.isdigit() and len(plen) <= 2 and int(plen) <= 32)):
            bits = int(plen) if slash else 32
            mask = ((1 << 32) - 1) ^ ((1 << (32 - bits)) - 1)
            lo = a & mask
            return (((lo, lo | ((1 << (32 - bits)) - 1)),), ())
    if "-" in tok and "/" not in tok:
        a, _, b = tok.partition("-")
        try:
            lo, hi = ipaddress.ip_address(a), ipaddress.ip_address(b)
        except ValueError:
            raise ValueError(f"bad address range '{tok}'") from None
        if lo.version != hi.version:
            raise ValueError(f"address range '{tok}' mixes IPv4 and IPv6")
        if int(lo) > int(hi):
            raise ValueError(f"address range '{tok}' is reversed")
        iv = ((int(lo), int(hi)),)
        return (iv, ()) if lo.version == 4 else ((), iv)
    try:
        net = ipaddress.ip_network(tok, strict=False)
    except ValueError:
        if "/" in tok:
            raise ValueError(f"bad CIDR '{tok}'") from None
        raise ValueError(f"bad address '{tok}'") from None
    iv = ((int(net.network_address), int(net.broadcast_address)),)
    return (iv, ()) if net.version == 4 else ((), iv)


def _port_num(t: str, tok: str) -> int:
    if not t.isdigit():
        raise ValueError(f"bad port '{tok}'")
    n = int(t)
    if n > PORT_MAX:
        raise ValueError(f"port {n} out of range (0-65535)")
    return n


def _port_leaf(tok: str) -> tuple[Intervals]:
    if ":" in tok:
        a, _, b = tok.partition(":")
        if not a and not b:
            raise ValueError(f"bad port range '{tok}'")
        lo = _port_num(a, tok) if a else 0
        hi = _port_num(b, tok) if b else PORT_MAX
        if lo > hi:
            raise ValueError(f"port range '{tok}' is reversed")
        return (((lo, hi),),)
    n = _port_num(tok, tok)
    return (((n, n),),)


def _compile(text: str, col: int, *, universe, leaf, groups: dict[str, str], kind: str,
             keyword: str | None, other: dict, stack: tuple[str, ...] = (), entries: bool = False):
    def resolve(name: str, pos: int) -> Entries:
        if name not in groups:
            okind = "port" if kind == "address" else "address"
            if name in other:
                hint = f" (it is {'a port' if okind == 'port' else 'an address'} variable)"
            else:
                hint = f" (define it under vars: {kind}-groups: in the config)"
            raise _Err(f"unknown {kind} variable '${name}'{hint}", pos)
        if name in stack:
            raise _Err("variable cycle: " + " -> ".join("$" + n for n in (*stack, name)), pos)
        try:
            return _compile(str(groups[name]), 0, universe=universe, leaf=leaf, groups=groups, kind=kind,
                            keyword=keyword, other=other, stack=(*stack, name), entries=True)
        except RuleError as e:
            raise _Err(f"in ${name}: {e.message}", pos) from None

    try:
        p = _ListParser(text, universe, leaf, resolve)
        got = p.parse()
    except _Err as e:
        raise RuleError(e.msg, column=col + e.pos, keyword=keyword) from None
    return got if entries else p.evaluate(got)


def parse_addr(text: str, *, vars: dict | None = None, column: int = 1, keyword: str | None = None,
               cache: dict | None = None) -> AddrSet:
    """Compile an address expression; `column` is where `text` starts in the
    rule line (1-based), so errors point at the offending token.  `cache`
    (one dict per load, same vars) shares compiled sets between rules."""
    if cache is not None:
        hit = cache.get(("a", text))
        if hit is not None:
            return hit
        s = parse_addr(text, vars=vars, column=column, keyword=keyword)
        cache[("a", text)] = s
        return s
    vars = vars or {}
    groups = vars.get("address-groups") or {}
    universe = (((0, V4_MAX),), ((0, V6_MAX),))
    v4, v6 = _compile(text, column, universe=universe, leaf=_addr_leaf, groups=groups, kind="address",
                      keyword=keyword, other=vars.get("port-groups") or {})
    if not v4 and not v6:
        raise RuleError(f"address set '{text}' is empty (everything is negated)", column=column, keyword=keyword)
    return AddrSet(v4, v6, text)


def parse_ports(text: str, *, vars: dict | None = None, column: int = 1, keyword: str | None = None,
                cache: dict | None = None) -> PortSet:
    if cache is not None:
        hit = cache.get(("p", text))
        if hit is not None:
            return hit
        s = parse_ports(text, vars=vars, column=column, keyword=keyword)
        cache[("p", text)] = s
        return s
    vars = vars or {}
    groups = vars.get("port-groups") or {}
    universe = (((0, PORT_MAX),),)
    (iv,) = _compile(text, column, universe=universe, leaf=_port_leaf, groups=groups, kind="port",
                     keyword=keyword, other=vars.get("address-groups") or {})
    if not iv:
        raise RuleError(f"port set '{text}' is empty (everything is negated)", column=column, keyword=keyword)
    return PortSet(iv, text)


ANY_ADDR = AddrSet(((0, V4_MAX),), ((0, V6_MAX),), "any")
ANY_PORT = PortSet(((0, PORT_MAX),), "any")
