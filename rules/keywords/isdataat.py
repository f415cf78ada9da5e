"""isdataat:[!]N[,relative] -- is there a byte at position N (of the payload,
or after the previous match with ``relative``)?"""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_int, split_commas
from rules.payload import IsDataAt


def _isdataat(value: str, ctx: Ctx):
    parts = split_commas(value)
    n = parse_int(parts[0][0], ctx, lo=0, hi=65535, what="isdataat position", at=parts[0][1])
    relative = False
    for p, at in parts[1:]:
        if p == "relative":
            relative = True
        elif p == "rawbytes":
            pass
        else:
            raise ctx.error(f"unknown isdataat option '{p}' (expected relative or rawbytes)", at)
    item = IsDataAt(n=n, negated=ctx.negated, relative=relative)
    ctx.items.append(item)
    return item


isdataat = Keyword("isdataat", _isdataat, REQUIRED, negation=True)
