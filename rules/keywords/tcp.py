"""flags: TCP flags F S R P A U C E (1 = C, 2 = E, the old names) and 0 (none).

Modifiers (before or after the letters): none = exactly these; ``+`` = these
and maybe others; ``*`` = any of these; ``!`` = not all of these (Suricata's
meaning).  ``flags:S,CE`` ignores the bits after the comma."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword
from rules.packet import IPPROTO_TCP

_BITS = {"F": 1, "S": 2, "R": 4, "P": 8, "A": 16, "U": 32, "E": 64, "C": 128, "2": 64, "1": 128}


def _bits(text: str, at: int, ctx: Ctx, allow_mod: bool):
    bits = 0
    mod = None
    zero = False
    for k, ch in enumerate(text):
        u = ch.upper()
        if u in _BITS:
            bits |= _BITS[u]          # a repeated flag is harmless (Suricata accepts it too)
        elif ch == "0":
            zero = True
        elif ch in "+*!" and allow_mod:
            if mod is not None:
                raise ctx.error("only one of the modifiers + * ! may be used", at + k)
            mod = ch
        elif ch in " \t":
            continue
        else:
            raise ctx.error(f"unknown TCP flag '{ch}' (use F S R P A U C E, 0, and + * !)", at + k)
    if zero and bits:
        raise ctx.error("flag '0' (no flags) cannot be combined with other flags", at)
    return bits, mod, zero


def _flags(value: str, ctx: Ctx):
    ctx.once()
    main, _, ign = value.partition(",")
    lead = len(main) - len(main.lstrip())
    bits, mod, zero = _bits(main.strip(), lead, ctx, True)
    if not bits and not zero:
        raise ctx.error("flags needs at least one flag (or 0)")
    ignore = 0
    if ign.strip():
        ignore, _, _ = _bits(ign.strip(), len(main) + 1 + (len(ign) - len(ign.lstrip())), ctx, False)
    keep = 0xFF & ~ignore
    if zero:
        mod = None
    if mod == "+":
        pred = lambda f: (f & bits) == bits
    elif mod == "*":
        pred = lambda f: (f & bits) != 0
    elif mod == "!":
        pred = lambda f: (f & bits) != bits
    else:
        pred = lambda f: f == bits

    def check(p, pred=pred, keep=keep) -> bool:
        return p.proto == IPPROTO_TCP and not p.frag and pred(p.tcp_flags & keep)

    ctx.add_check(check, cost=0)
    return value.strip()


flags = Keyword("flags", _flags, REQUIRED)
