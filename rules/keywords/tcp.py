"""flags: TCP flags F S R P A U C E (1 = C, 2 = E, the old names) and 0 (none);
tcp.hdr: the TCP header as a sticky buffer.

Modifiers (before or after the letters): none = exactly these; ``+`` = these
and maybe others; ``*`` = any of these; ``!`` = not all of these (Suricata's
meaning).  ``flags:S,CE`` ignores the bits after the comma.

``tcp.hdr`` is the raw TCP header, options included (data offset x 4 bytes),
never the payload; a packet keyword, as in Suricata."""
from __future__ import annotations

from rules.keywords._base import NONE, REQUIRED, Ctx, Keyword
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
    # the flags bytes the check passes, bit f for flags byte f: the detect stage's flags
    # prefilter (rules.detect), as Suricata keeps rules without a fast pattern but with
    # `flags` out of the candidates of a packet whose flags they refuse
    ctx.fields["tcp_flags"] = sum(1 << f for f in range(256) if pred(f & keep))
    return value.strip()


flags = Keyword("flags", _flags, REQUIRED, requires="packet")


def tcp_header(buf, pkt) -> list[bytes]:
    """The tcp.hdr buffer of `pkt` (none for a packet without a whole TCP header)."""
    if pkt is None or pkt.proto != IPPROTO_TCP or pkt.frag:
        return []
    f = pkt.frame
    off = pkt.l4_off
    if off + 20 > len(f):
        return []
    end = off + ((f[off + 12] >> 4) << 2)
    return [bytes(f[off:end])] if 20 <= end - off and end <= len(f) else []


def _tcp_hdr(value, ctx: Ctx):
    if ctx.ip_protos is not None and IPPROTO_TCP not in ctx.ip_protos:
        raise ctx.error(f"'tcp.hdr' needs TCP, the rule's protocol is '{ctx.proto}'")
    ctx.ip_protos = frozenset({IPPROTO_TCP})
    ctx.switch("tcp.hdr")
    return True


tcp_hdr = Keyword("tcp.hdr", _tcp_hdr, NONE, requires="packet")
