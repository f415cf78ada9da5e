"""dns.opcode: the opcode of a DNS message's header (rules.applayer.dns), Suricata's
syntax ``dns.opcode:[!]N``.

As Suricata 7.0.10 (checked with `suricata -T` and crafted pcaps):
- the value is a decimal number 0..255 (a leading ``+`` and leading zeros are
  accepted; ``0x4``, ``-1``, ``256``, ``4,5`` and an empty value are errors), after
  any number of ``!`` (negation), spaces and tabs: ``!4``, ``! 4``, ``!!4`` all mean
  "not 4".  The opcode is 4 bits, so ``dns.opcode:16`` never matches and ``!16``
  always does.
- it applies to requests and responses alike, each transaction by its own
  message's header (Suricata's DNS transactions hold one message each): on a
  request transaction in the to-server direction, on a response transaction in
  the to-client one; ``flow:to_server`` / ``flow:to_client`` narrow that.
- the rule then needs the dns app-layer protocol.
"""
from __future__ import annotations

from rules.applayer.base import DONE
from rules.keywords._base import REQUIRED, Ctx, Keyword


def parse_opcode(value: str) -> tuple[bool, int] | None:
    """(negated, opcode) of a dns.opcode value, None when it is not one."""
    negated = False
    for i, c in enumerate(value):
        if c in " \t":
            continue
        if c == "!":
            negated = True
            continue
        digits = value[i + 1:] if c == "+" else value[i:]
        if not digits or not digits.isascii() or not digits.isdigit():
            return None
        n = int(digits)
        return (negated, n) if n <= 255 else None
    return None


def _dns_opcode(value: str, ctx: Ctx):
    got = parse_opcode(value)
    if got is None:
        raise ctx.error(f"dns.opcode: '{value}' is not an opcode ([!]0..255)")
    negated, code = got
    if negated:
        def check(tx) -> bool:
            return tx.opcode != code
    else:
        def check(tx) -> bool:
            return tx.opcode == code
    # the transaction's own message decides, requests and responses alike (a rule without
    # flow direction is evaluated on both); its side is complete once it exists
    ctx.app_check("dns", None, DONE, check)
    return f"!{code}" if negated else f"{code}"


dns_opcode = Keyword("dns.opcode", _dns_opcode, REQUIRED)
