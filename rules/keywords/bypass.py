"""bypass: a post-match keyword -- when the rule matches, its flow needs no more inspection.

Suricata's `bypass` (rules/bypass-keyword in its documentation): the flow is
excluded from further detection from the next packet on, and the data plane
may take it out of the packet path (rules.api.Bypass, reason "bypass").  The
rule itself still alerts (or drops) as its action says on the packet that
matched.  It takes no value and says nothing about IP-only-ness.
"""
from __future__ import annotations

from rules.keywords._base import NONE, Ctx, Keyword


def _bypass(value, ctx: Ctx):
    ctx.once()
    ctx.fields["bypass"] = True
    return True


bypass = Keyword("bypass", _bypass, NONE, iponly=True)
