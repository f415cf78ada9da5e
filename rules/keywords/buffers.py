"""Buffer selection.  Only the packet payload exists here, so ``pkt_data``
(back to the packet payload) is accepted and changes nothing; every sticky
app-layer buffer (http.uri, dns.query, file_data, ...) is simply not in the
table and fails as "unsupported keyword"."""
from __future__ import annotations

from rules.keywords._base import NONE, Ctx, Keyword


def _pkt_data(value, ctx: Ctx):
    return True


pkt_data = Keyword("pkt_data", _pkt_data, NONE)
