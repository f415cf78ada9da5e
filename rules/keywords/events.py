"""decode-event: match a decoder event on the packet.

The decoder (rules/decode.py) records events as "decoder.<layer>.<name>",
Suricata's event table names; the keyword value is the part after
"decoder." (``decode-event:ipv4.trunc_pkt``), as in Suricata's own
decoder-events.rules.  A name the decoder never raises simply never matches."""
from __future__ import annotations

import re

from rules.keywords._base import REQUIRED, Ctx, Keyword

_NAME = re.compile(r"[a-z0-9_]+(\.[a-z0-9_]+)*\Z")


def _decode_event(value: str, ctx: Ctx):
    name = value.strip().lower()
    if not _NAME.match(name):
        raise ctx.error(f"bad decoder event name '{value.strip()}' (expected layer.event, e.g. ipv4.trunc_pkt)",
                        len(value) - len(value.lstrip()))
    full = "decoder." + name
    ctx.add_check(lambda p, full=full: full in p.events, cost=0)
    return name


decode_event = Keyword("decode-event", _decode_event, REQUIRED)
