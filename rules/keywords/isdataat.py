"""isdataat:[!]N[,relative] -- is there a byte at position N (of the payload,
or after the previous match with ``relative``)?

``isdataat:!1,relative`` right after a content is not an inspection of its
own: Suricata folds it into that content as ``endswith`` (checked with
``suricata -r``: after a *negated* content it makes that content
``!"x"; endswith``, i.e. "the buffer does not end with x", which matches even
when bytes follow the previous positive match)."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_int, split_commas
from rules.payload import Content, IsDataAt


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
    if ctx.negated and relative and n == 1 and ctx.items and isinstance(ctx.items[-1], Content):
        ctx.items[-1].endswith = True
        return ctx.items[-1]
    item = IsDataAt(n=n, negated=ctx.negated, relative=relative)
    ctx.items.append(item)
    return item


isdataat = Keyword("isdataat", _isdataat, REQUIRED, negation=True)
