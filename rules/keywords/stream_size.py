"""stream_size: ``stream_size:<client|server|both|either>,<op>,<n>`` compares the
number of sequence numbers a side of the TCP session has used -- its highest
sequence number seen plus one, minus its ISN, so the SYN counts 1, data
counts as soon as it is seen (not when acknowledged) and a FIN counts 1 -- as
Suricata 7 does (checked with suricata -r).  ``both``: both sides satisfy
it; ``either``: at least one.  Operators: ``<``, ``<=``, ``=``, ``!=``,
``>=``, ``>``.  A packet of a flow without a tracked TCP session never
matches.  A rule with stream_size and payload keywords inspects the stream
and then the packet (Suricata's implicit typing)."""
from __future__ import annotations

import operator

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_int, split_commas
from rules.packet import IPPROTO_TCP

_OPS = {"<": operator.lt, "<=": operator.le, "=": operator.eq, "!=": operator.ne, ">=": operator.ge,
        ">": operator.gt}
_SIDES = ("client", "server", "both", "either")


def _stream_size(value: str, ctx: Ctx):
    parts = split_commas(value)
    if len(parts) != 3:
        raise ctx.error("stream_size takes <client|server|both|either>,<operator>,<number>")
    (side, s_at), (op, o_at), (num, n_at) = parts
    if side not in _SIDES:
        raise ctx.error(f"stream_size side '{side}' is not one of {', '.join(_SIDES)}", s_at)
    if op not in _OPS:
        raise ctx.error(f"stream_size operator '{op}' is not one of {' '.join(_OPS)}", o_at)
    n = parse_int(num, ctx, lo=0, hi=(1 << 32) - 1, what="stream_size", at=n_at)
    if ctx.ip_protos is not None and IPPROTO_TCP not in ctx.ip_protos:
        raise ctx.error(f"'stream_size' needs TCP, the rule's protocol is '{ctx.proto}'")
    ctx.ip_protos = frozenset({IPPROTO_TCP})
    cmp = _OPS[op]

    def check(p, side=side, cmp=cmp, n=n) -> bool:
        f = p.flow
        ssn = f.tcp if f is not None else None
        if ssn is None:
            return False
        c, s = cmp(ssn.client.next_seq, n), cmp(ssn.server.next_seq, n)
        if side == "client":
            return c
        if side == "server":
            return s
        return (c and s) if side == "both" else (c or s)
    ctx.add_check(check, cost=2)
    return (side, op, n)


stream_size = Keyword("stream_size", _stream_size, REQUIRED, requires="both")
