"""Transforms of the current sticky buffer.  dotprefix: put a '.' in front,
so ``dns.query; dotprefix; content:".example.com"; endswith;`` matches the
domain and its subdomains but not ``badexample.com``."""
from __future__ import annotations

from rules.keywords._base import NONE, Ctx, Keyword


def _dot(b: bytes) -> bytes:
    return b"." + b


def _dotprefix(value, ctx: Ctx):
    if ctx.buffer == "pkt":
        raise ctx.error("dotprefix needs a sticky buffer before it (e.g. dns.query; dotprefix;)")
    if ctx.items:
        # after some contents: the keywords from here on inspect a transformed
        # copy of the buffer, the earlier ones the buffer as it was (Suricata 7
        # behaves so, checked with suricata -r)
        base = ctx.buffer.split("#")[0]
        name = f"{base}#{sum(1 for b in ctx.buffers if b.split('#')[0] == base)}"
        ctx.transforms[name] = list(ctx.transforms.get(ctx.buffer, ()))
        ctx.switch(name)
    ctx.transforms.setdefault(ctx.buffer, []).append(_dot)
    return True


dotprefix = Keyword("dotprefix", _dotprefix, NONE)
