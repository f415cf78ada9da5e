"""dns.query (sticky buffer; ``dns_query`` is its older name): the query
names of a DNS request carried over UDP.

The buffer is each question name in dotted form without the trailing dot
(``www.example.com``), taken straight from the UDP payload of a request
(QR bit clear); a message with several questions matches when any name
does, as Suricata's multi-buffer does.  Only DNS over UDP: a rule whose
protocol is tcp gets "unsupported" (DNS over TCP needs stream reassembly).
`dns_names` is the extractor the payload chain calls; it never raises.

Prefiltering: names travel as length-prefixed labels, so a dotted content
never appears literally in the packet.  The parser therefore gives the
prefilter the longest dot-free piece of the chosen content, which every
packet carrying the name does contain.
"""
from __future__ import annotations

from rules.keywords._base import NONE, Ctx, Keyword
from rules.packet import IPPROTO_UDP


def dns_names(buf: bytes) -> list[bytes]:
    """Question names of a DNS request message (empty when it is not one)."""
    n = len(buf)
    if n < 12 or buf[2] & 0x80:          # too short, or a response
        return []
    qd = (buf[4] << 8) | buf[5]
    if qd == 0 or qd > 64:
        return []
    names: list[bytes] = []
    off = 12
    for _ in range(qd):
        labels: list[bytes] = []
        pos = off
        jumped = False
        hops = 0
        total = 0
        while True:
            if pos >= n:
                return names
            ln = buf[pos]
            if ln == 0:
                pos += 1
                break
            if ln & 0xC0 == 0xC0:            # compression pointer
                if pos + 1 >= n or hops > 16:
                    return names
                if not jumped:
                    off = pos + 2
                    jumped = True
                pos = ((ln & 0x3F) << 8) | buf[pos + 1]
                hops += 1
                continue
            if ln & 0xC0:                    # reserved label types
                return names
            if pos + 1 + ln > n:
                return names
            labels.append(buf[pos + 1:pos + 1 + ln])
            total += ln + 1
            if total > 255:
                return names
            pos += 1 + ln
        if not jumped:
            off = pos
        if off + 4 > n:                      # qtype/qclass missing: truncated question
            return names
        off += 4
        names.append(b".".join(labels))
    return names


def is_dns_request(buf: bytes) -> bool:
    return bool(dns_names(buf))


def _check_proto(ctx: Ctx) -> None:
    if ctx.proto == "tcp":
        raise ctx.error(f"unsupported: '{ctx.keyword}' over TCP (DNS over TCP needs stream reassembly)",
                        unsupported=f"{ctx.keyword}:tcp")
    if ctx.ip_protos is not None and IPPROTO_UDP not in ctx.ip_protos:
        raise ctx.error(f"'{ctx.keyword}' needs UDP, the rule's protocol is '{ctx.proto}'")
    ctx.ip_protos = frozenset({IPPROTO_UDP})


def _dns_query(value, ctx: Ctx):
    _check_proto(ctx)
    ctx.switch("dns.query")
    return True


dns_query_buffer = Keyword("dns.query", _dns_query, NONE)
dns_query = Keyword("dns_query", _dns_query, NONE)     # the older name of the same sticky buffer
