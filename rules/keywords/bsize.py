"""bsize: the length of the current sticky buffer (uint forms: ``N``, ``<N``,
``>N``, ``A<>B`` ...).  Only after a sticky buffer, as in Suricata."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_uint_cmp
from rules.payload import BufSize


def _bsize(value: str, ctx: Ctx):
    if ctx.buffer == "pkt":
        raise ctx.error("bsize needs a sticky buffer before it (e.g. dns.query; bsize:...)")
    text, pred = parse_uint_cmp(value, ctx, hi=(1 << 32) - 1, what="bsize")
    ctx.items.append(BufSize(pred=pred, text=text))
    return text


bsize = Keyword("bsize", _bsize, REQUIRED)
