"""Buffer selection: ``pkt_data`` goes back to the packet payload after a
sticky buffer (dns.query, see dns.py).  Sticky buffers ipsbridge lacks
(http.uri, file_data, ...) are not in the table and fail as "unsupported
keyword"."""
from __future__ import annotations

from rules.keywords._base import NONE, Ctx, Keyword


def _pkt_data(value, ctx: Ctx):
    ctx.switch("pkt")
    return True


pkt_data = Keyword("pkt_data", _pkt_data, NONE)
