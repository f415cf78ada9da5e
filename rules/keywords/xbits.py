"""xbits: bits per host or per IP pair, with an expiry.

    xbits:<set|unset|toggle|isset|isnotset>,<name>,track <ip_src|ip_dst|ip_pair>[,expire <seconds>];

isset / isnotset are conditions of the match; set / unset / toggle are applied when the
rule matched (rules.keywords._state).  `track ip_src` keeps the bit on the packet's source
host, `ip_dst` on its destination, `ip_pair` on the two addresses whatever their order.
Unlike flowbits the bits outlive flows: a bit set by one flow is seen by the next flow of
that host.  The expiry (default 30 seconds) counts in whole seconds of packet time: a bit
set at second T with expire E is set up to second T+E included.

Suricata 7.0.10's behaviour, from detect-xbits.c / host-bit.c / ippair-bit.c and checked
with suricata -r (tests/replay/differential app_keywords):
- the value is matched with Suricata's own expression (`_SYNTAX`, not anchored at the end:
  text after the last recognised part is ignored, a name may hold spaces or '|' -- one name,
  never a list); `track` is mandatory, `expire 0` and a non-decimal expire are errors;
  `xbits:noalert` is refused (the expression needs a track; write `noalert;`); `track tx`
  is Suricata 8 only (an error in 7);
- `set` on a bit already there does not move its expiry; a bit is looked at only by
  isset/isnotset, which drop it once expired.  Until then an expired bit is still "there"
  for set (no effect) and toggle (clears it): Suricata removes a host whose every bit expired
  in its once-a-second housekeeping (HostTimeoutHash), after which a set starts a new bit.
  Here `prune(now)` is that housekeeping, run from the engine's tick once the table holds
  more than PRUNE_ABOVE entries -- so, as in Suricata, what a set does shortly after the
  expiry depends on when housekeeping last ran (the differential scenarios stay clear of it);
- signature order puts rules that check an xbit before rules that do not use xbits and
  before rules that only set one (rules.keywords._state.order_key): a set and a check on the
  same packet, the check does not see the bit;
- an xbits rule without payload or flow direction is IP-only (SIGMATCH_IPONLY_COMPAT).

Memory is bounded: the table holds at most `max_entries` hosts and IP pairs (MAX_ENTRIES,
Suricata bounds them with host.memcap / ippair.memcap); at the cap the oldest entry goes,
with its bits (counted xbits.evicted), as Suricata's host table recycles a host under its
memcap.  Names come from the rules, so an entry holds a bounded number of bits.
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from rules.keywords._base import REQUIRED, Ctx, Keyword
from rules.keywords._state import StateOp

MAX_ENTRIES = 65536       # hosts and IP pairs together (about 300 bytes each with a few bits)
PRUNE_ABOVE = 4096        # entries held before the housekeeping walk is worth its cost
DEFAULT_EXPIRE = 30       # DETECT_XBITS_EXPIRE_DEFAULT

# detect-xbits.c PARSE_REGEX, as Suricata matches it (PCRE, \s ASCII, no end anchor)
_SYNTAX = re.compile(r"([a-z]+)(?:,\s*([^,]+))?(?:,\s*(?:track\s+([^,]+)))(?:,\s*(?:expire\s+([^,]+)))?",
                     re.ASCII)
_CMDS = ("set", "unset", "toggle", "isset", "isnotset")
_TRACKS = ("ip_src", "ip_dst", "ip_pair")
_NAME_MAX = 255           # fb_name[256]
_EXPIRE_MAX_LEN = 15      # expire_str[16]
_U32 = (1 << 32) - 1


def strtoull_strict(text: str, base: int = 10) -> int | None:
    """C's strtoull on the whole of `text` (Suricata's StringParse*: leading white space
    and a sign allowed, nothing after the digits; a minus wraps modulo 2**64), or None."""
    t = text.lstrip(" \t\n\v\f\r")
    neg = t[:1] == "-"
    if t[:1] in ("+", "-"):
        t = t[1:]
    digits = "0123456789" if base == 10 else "0123456789abcdefABCDEF"
    if not t or any(c not in digits for c in t):
        return None
    v = int(t, base)
    if v > (1 << 64) - 1:
        return None
    return (-v) % (1 << 64) if neg else v


@dataclass(frozen=True, slots=True)
class XbitOp(StateOp):
    cmd: str          # set | unset | toggle | isset | isnotset
    name: str
    track: str        # ip_src | ip_dst | ip_pair
    expire: int = DEFAULT_EXPIRE

    @property
    def read(self) -> bool:
        return self.cmd in ("isset", "isnotset")

    def test(self, pkt, flow, state) -> bool:
        return state.xbits.test(self, pkt)

    def apply(self, pkt, flow, state) -> None:
        state.xbits.apply(self, pkt)


def _key(track: str, pkt):
    if not pkt.ipver:
        return None
    if track == "ip_src":
        return (pkt.ipver, pkt.src)
    if track == "ip_dst":
        return (pkt.ipver, pkt.dst)
    a, b = pkt.src, pkt.dst
    return (pkt.ipver, a, b, 0) if a <= b else (pkt.ipver, b, a, 0)


class XbitTable:
    """Bits per host ((ipver, addr)) and per IP pair ((ipver, low, high, 0)): key ->
    {name: last second the bit is set}.  Insertion order is age (the oldest goes first)."""

    __slots__ = ("_t", "max_entries", "evicted")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._t: dict[tuple, dict[str, int]] = {}
        self.max_entries = max(1, max_entries)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._t)

    def test(self, op: XbitOp, pkt) -> bool:
        """isset / isnotset; an expired bit found is dropped (HostBitIsset)."""
        k = _key(op.track, pkt)
        bits = self._t.get(k) if k is not None else None
        exp = bits.get(op.name) if bits is not None else None
        if exp is not None and exp < int(pkt.ts):
            del bits[op.name]
            if not bits:
                del self._t[k]
            exp = None
        return (exp is not None) == (op.cmd == "isset")

    def apply(self, op: XbitOp, pkt) -> None:
        k = _key(op.track, pkt)
        if k is None:
            return
        t = self._t
        bits = t.get(k)
        cmd = op.cmd
        if cmd == "unset":
            if bits is not None and bits.pop(op.name, None) is not None and not bits:
                del t[k]
            return
        if bits is None:
            if len(t) >= self.max_entries:
                del t[next(iter(t))]
                self.evicted += 1
            bits = t[k] = {}
        if op.name in bits:
            if cmd == "toggle":
                del bits[op.name]
                if not bits:
                    del t[k]
            return                          # set: the bit there keeps its expiry (HostBitSet)
        bits[op.name] = int(pkt.ts) + op.expire

    def prune(self, now: float) -> None:
        """Housekeeping: entries whose every bit expired go (HostTimeoutHash, which keeps a
        host while one of its bits expires after `now`)."""
        if len(self._t) <= PRUNE_ABOVE:
            return
        sec = int(now)
        dead = [k for k, bits in self._t.items() if all(e <= sec for e in bits.values())]
        for k in dead:
            del self._t[k]

    def stats(self) -> dict[str, int]:
        return {"xbits.entries": len(self._t), "xbits.evicted": self.evicted}


def _xbits(value: str, ctx: Ctx):
    if value.startswith("noalert"):
        raise ctx.error("xbits:noalert is not accepted by Suricata 7 (use the noalert keyword)")
    m = _SYNTAX.match(value)
    if m is None:
        raise ctx.error("xbits: expected <set|unset|toggle|isset|isnotset>,<name>,track "
                        "<ip_src|ip_dst|ip_pair>[,expire <seconds>]")
    cmd, name, track, expire = m.groups()
    if cmd not in _CMDS:
        raise ctx.error(f"unknown xbits command '{cmd}' (expected {', '.join(_CMDS)})")
    if name is None:
        raise ctx.error(f"xbits {cmd} needs a name")
    if len(name) > _NAME_MAX:
        raise ctx.error(f"xbits name longer than {_NAME_MAX} characters", m.start(2))
    if track not in _TRACKS:
        hint = " ('track tx' is Suricata 8)" if track.strip() == "tx" else ""
        raise ctx.error(f"xbits: unknown track '{track}' (expected ip_src, ip_dst or ip_pair){hint}", m.start(3))
    secs = DEFAULT_EXPIRE
    if expire is not None:
        n = strtoull_strict(expire) if len(expire) <= _EXPIRE_MAX_LEN else None
        if n is None or n > _U32:
            raise ctx.error(f"xbits: invalid expire '{expire}' (seconds, 1..{_U32})", m.start(4))
        if n == 0:
            raise ctx.error("xbits: expire must be bigger than 0", m.start(4))
        secs = n
    return XbitOp(cmd, name, track, secs)


xbits = Keyword("xbits", _xbits, REQUIRED, iponly=True)
