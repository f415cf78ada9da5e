"""dsize: payload size comparison (``N``, ``<N``, ``>N``, ``!N``, ``A<>B``
exclusive, ...), read from len(pkt.payload).

As Suricata 7 (checked with suricata -r on packets without payload):
``!N``, ``>N``, ``>=N``, a range and ``=N`` with N > 0 also require a
payload, so ``dsize:!9`` does not match a SYN or a pure ACK; ``<N``,
``<=N`` and ``0`` match empty packets.  Comparisons Suricata's integer
parser refuses are refused: ``>=0`` and ``<0`` (at the type's minimum),
``>65535`` and ``<=65535`` (at its maximum).  A dsize rule inspects packet
payloads, never the TCP stream."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_uint_cmp


def _dsize(value: str, ctx: Ctx):
    ctx.once()
    text, pred = parse_uint_cmp(value, ctx, hi=65535, what="dsize")
    if text in (">=0", "<0", ">65535", "<=65535"):
        raise ctx.error(f"dsize:{text} is always true or never true; Suricata refuses it "
                        "(remove the dsize or change the bound)")
    if text.startswith(("!", ">")) or "<>" in text or (text[0].isdigit() and text != "0"):
        ctx.add_check(lambda p, pred=pred: len(p.payload) > 0 and pred(len(p.payload)), cost=1)
    else:
        ctx.add_check(lambda p, pred=pred: pred(len(p.payload)), cost=1)
    return text


dsize = Keyword("dsize", _dsize, REQUIRED, requires="packet")
