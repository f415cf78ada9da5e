"""IP header keywords: ttl, ip_proto, sameip."""
from __future__ import annotations

from rules.keywords._base import NONE, REQUIRED, Ctx, Keyword, parse_int, parse_uint_cmp

# protocol names Suricata accepts for ip_proto (the /etc/protocols names), as data
PROTO_NAMES = {
    "hopopt": 0, "icmp": 1, "igmp": 2, "ggp": 3, "ipip": 4, "ipencap": 4, "st": 5, "tcp": 6, "egp": 8,
    "igp": 9, "pup": 12, "udp": 17, "hmp": 20, "xns-idp": 22, "rdp": 27, "iso-tp4": 29, "dccp": 33,
    "xtp": 36, "ddp": 37, "idpr-cmtp": 38, "ipv6": 41, "ipv6-route": 43, "ipv6-frag": 44, "idrp": 45,
    "rsvp": 46, "gre": 47, "esp": 50, "ah": 51, "skip": 57, "ipv6-icmp": 58, "icmpv6": 58,
    "ipv6-nonxt": 59, "ipv6-opts": 60, "rspf": 73, "vmtp": 81, "eigrp": 88, "ospf": 89, "ax.25": 93,
    "ipip4": 94, "etherip": 97, "encap": 98, "pim": 103, "ipcomp": 108, "vrrp": 112, "l2tp": 115,
    "isis": 124, "sctp": 132, "fc": 133, "mobility-header": 135, "udplite": 136, "mpls-in-ip": 137,
    "manet": 138, "hip": 139, "shim6": 140, "wesp": 141, "rohc": 142,
}


def _ttl(value: str, ctx: Ctx):
    # may repeat: every ttl condition must hold (as in Suricata)
    text, pred = parse_uint_cmp(value, ctx, hi=255, what="ttl")
    ctx.add_check(lambda p, pred=pred: p.ipver != 0 and pred(p.ttl), cost=1)
    return text


def _ip_proto(value: str, ctx: Ctx):
    v = value.strip()
    lead = len(value) - len(value.lstrip())
    op = ""
    if v[:1] in "<>!":
        op, v = v[0], v[1:].strip()
        lead += 1
    if v.isdigit():
        n = parse_int(v, ctx, lo=0, hi=255, what="ip_proto", at=lead)
    elif v.lower() in PROTO_NAMES:
        n = PROTO_NAMES[v.lower()]
    else:
        raise ctx.error(f"unknown ip_proto '{v}' (use a number 0-255 or a protocol name)", lead)
    if op == "":
        pred = lambda x, n=n: x == n
    elif op == "!":
        pred = lambda x, n=n: x != n
    elif op == "<":
        pred = lambda x, n=n: x < n
    else:
        pred = lambda x, n=n: x > n
    if ctx.ip_protos is not None:
        left = frozenset(x for x in ctx.ip_protos if pred(x))
        if not left:
            raise ctx.error(f"ip_proto:{op}{n} contradicts the rule's protocol '{ctx.proto}'")
        ctx.ip_protos = left
    elif op == "":
        ctx.ip_protos = frozenset({n})
    ctx.add_check(lambda p, pred=pred: p.ipver != 0 and pred(p.proto), cost=0)
    return f"{op}{n}"


def _sameip(value, ctx: Ctx):
    ctx.add_check(lambda p: p.ipver != 0 and p.src == p.dst, cost=0)
    return True


ttl = Keyword("ttl", _ttl, REQUIRED, requires="packet")
ip_proto = Keyword("ip_proto", _ip_proto, REQUIRED, iponly=True, requires="packet")
sameip = Keyword("sameip", _sameip, NONE, requires="packet")
