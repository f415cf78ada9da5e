"""dsize: payload size comparison (``N``, ``<N``, ``>N``, ``!N``, ``A<>B``
exclusive, ...), read from len(pkt.payload)."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_uint_cmp


def _dsize(value: str, ctx: Ctx):
    ctx.once()
    text, pred = parse_uint_cmp(value, ctx, hi=65535, what="dsize")
    ctx.add_check(lambda p, pred=pred: pred(len(p.payload)), cost=1)
    return text


dsize = Keyword("dsize", _dsize, REQUIRED, requires="packet")   # Suricata: a dsize rule inspects packets, never the stream
