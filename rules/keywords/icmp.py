"""ICMP keywords: itype, icode (comparison forms), icmp_id, icmp_seq (exact).
They only match ICMP/ICMPv6 packets (the decoder leaves -1 elsewhere)."""
from __future__ import annotations

from rules.keywords._base import Ctx, Keyword, parse_int, parse_uint_cmp


def _cmp_field(name: str):
    def parse(value: str, ctx: Ctx):
        ctx.once()
        text, pred = parse_uint_cmp(value, ctx, hi=255, what=ctx.keyword)
        check = lambda p, pred=pred: (v := getattr(p, name)) >= 0 and pred(v)  # noqa: E731
        # (the field and the test, for what the rules allow a flow direction of one message
        # type: rules.detect.Detector._direction_pids)
        check.icmp_field = (name, pred)
        ctx.add_check(check, cost=1)
        return text
    return parse


def _exact_field(name: str):
    def parse(value: str, ctx: Ctx):
        ctx.once()
        n = parse_int(value, ctx, lo=0, hi=65535, what=ctx.keyword)
        ctx.add_check(lambda p, n=n: getattr(p, name) == n, cost=1)
        return n
    return parse


itype = Keyword("itype", _cmp_field("icmp_type"), requires="packet")
icode = Keyword("icode", _cmp_field("icmp_code"), requires="packet")
icmp_id = Keyword("icmp_id", _exact_field("icmp_id"), requires="packet")
icmp_seq = Keyword("icmp_seq", _exact_field("icmp_seq"))
