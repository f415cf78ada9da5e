"""More IP/TCP header keywords: id, fragbits, fragoffset, ipopts (IPv4), and
seq, ack, window (TCP).  All read decoded Packet fields (ip_id, ip_off,
seq, ack, win) or, for ipopts, the IPv4 header bytes in pkt.frame.

Checked against suricata -r (tests/unit/test_keywords.py).  One deliberate
difference: ``ipopts:any`` matches a packet with any IPv4 option, as
documented; Suricata 7.0.10 never matched it in our differential run."""
from __future__ import annotations

from rules.keywords._base import REQUIRED, Ctx, Keyword, parse_int
from rules.packet import IPPROTO_TCP

_FRAGBITS = {"M": 0x2000, "D": 0x4000, "R": 0x8000}
# IPv4 option type codes for ipopts
_IPOPTS = {"eol": 0, "nop": 1, "rr": 7, "ts": 68, "sec": 130, "lsrr": 131, "esec": 133, "satid": 136,
           "ssrr": 137}


def _id(value: str, ctx: Ctx):
    ctx.once()
    n = parse_int(value, ctx, lo=0, hi=65535, what="id")
    ctx.add_check(lambda p, n=n: p.ipver == 4 and p.ip_id == n, cost=0)
    return n


def _tcp_field(name: str, attr: str, hi: int, negation: bool = False):
    def parse(value: str, ctx: Ctx):
        ctx.once()
        v = value.strip()
        neg = negation and v.startswith("!")
        if neg:
            v = v[1:]
        n = parse_int(v, ctx, lo=0, hi=hi, what=name, at=len(value) - len(value.lstrip()) + (1 if neg else 0))

        def check(p, n=n, neg=neg) -> bool:
            return p.proto == IPPROTO_TCP and not (p.frag and p.ip_off & 0x1FFF) \
                and (getattr(p, attr) == n) != neg
        ctx.add_check(check, cost=0)
        return f"{'!' if neg else ''}{n}"
    return parse


def _fragbits(value: str, ctx: Ctx):
    ctx.once()
    bits, mod = 0, None
    lead = len(value) - len(value.lstrip())
    for k, ch in enumerate(value.strip()):
        u = ch.upper()
        if u in _FRAGBITS:
            bits |= _FRAGBITS[u]      # repeated bit: harmless, accepted as Suricata does
        elif ch in "+*!":
            if mod is not None:
                raise ctx.error("only one of the modifiers + * ! may be used", lead + k)
            mod = ch
        else:
            raise ctx.error(f"unknown fragbit '{ch}' (use M, D, R and + * !)", lead + k)
    if not bits:
        raise ctx.error("fragbits needs at least one of M, D, R")
    if mod == "+":
        pred = lambda f: (f & bits) == bits
    elif mod == "*":
        pred = lambda f: (f & bits) != 0
    elif mod == "!":
        pred = lambda f: (f & bits) == 0
    else:
        pred = lambda f: f == bits
    ctx.add_check(lambda p, pred=pred: p.ipver == 4 and pred(p.ip_off & 0xE000), cost=0)
    return value.strip()


def _fragoffset(value: str, ctx: Ctx):
    ctx.once()
    v = value.strip()
    lead = len(value) - len(value.lstrip())
    op = ""
    if v[:1] in "!<>":
        op, v = v[0], v[1:]
    n = parse_int(v, ctx, lo=0, hi=65535, what="fragoffset", at=lead + len(op))
    # compared with the 13-bit field itself (units of 8 bytes), as Suricata 7 does (checked with suricata -r)
    if op == "!":
        pred = lambda x: x != n
    elif op == "<":
        pred = lambda x: x < n
    elif op == ">":
        pred = lambda x: x > n
    else:
        pred = lambda x: x == n
    ctx.add_check(lambda p, pred=pred: p.ipver != 0 and pred(p.ip_off & 0x1FFF), cost=0)
    return f"{op}{n}"


def _has_ipopt(p, code: int | None) -> bool:
    if p.ipver != 4:
        return False
    f = p.frame
    off = p.l3_off
    if off >= len(f):
        return False
    hlen = (f[off] & 0x0F) * 4
    i, end = off + 20, min(off + hlen, len(f))
    while i < end:
        t = f[i]
        if code is None or t == code:
            return True
        if t == 0:
            return False
        if t == 1:
            i += 1
            continue
        if i + 1 >= end or f[i + 1] < 2:
            return False
        i += f[i + 1]
    return False


def _ipopts(value: str, ctx: Ctx):
    ctx.once()
    v = value.strip()
    if v == "any":
        code = None
    elif v in _IPOPTS:
        code = _IPOPTS[v]
    else:
        raise ctx.error(f"unknown ipopts '{v}' (expected {', '.join(_IPOPTS)} or any)",
                        len(value) - len(value.lstrip()))
    ctx.add_check(lambda p, code=code: _has_ipopt(p, code), cost=2)
    return v


id_ = Keyword("id", _id, REQUIRED, requires="packet")
seq = Keyword("seq", _tcp_field("seq", "seq", (1 << 32) - 1), REQUIRED, requires="packet")
ack = Keyword("ack", _tcp_field("ack", "ack", (1 << 32) - 1), REQUIRED, requires="packet")
window = Keyword("window", _tcp_field("window", "win", 65535, negation=True), REQUIRED, requires="packet")
fragbits = Keyword("fragbits", _fragbits, REQUIRED, requires="packet")
fragoffset = Keyword("fragoffset", _fragoffset, REQUIRED, requires="packet")
ipopts = Keyword("ipopts", _ipopts, REQUIRED, requires="packet")
