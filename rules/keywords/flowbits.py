"""flowbits and noalert.

``flowbits:isset,a`` / ``isnotset,a`` are checks on pkt.flow.flowbits (``a|b``:
any of them, ``a&b``: all of them); set / unset / toggle (``a|b``: each
name) / noalert are
post-match operations the engine applies (Rule.flowbits).  Without a flow
nothing is set, so isset fails and isnotset holds."""
from __future__ import annotations

import re

from rules.keywords._base import NONE, REQUIRED, Ctx, Keyword
from rules.rule import FlowbitOp

_NAME = re.compile(r"[A-Za-z0-9_.\-]+\Z")
_CMDS = ("set", "unset", "toggle", "isset", "isnotset", "noalert")


def _names(text: str, at: int, ctx: Ctx, cmd: str) -> tuple[tuple[str, ...], bool]:
    if "|" in text and "&" in text:
        raise ctx.error("flowbits: cannot mix '|' and '&'", at)
    sep = "|" if "|" in text else "&"
    names = []
    pos = at
    for part in text.split(sep):
        name = part.strip()
        if not _NAME.match(name):
            raise ctx.error(f"bad flowbit name '{name}'", pos)
        names.append(name)
        pos += len(part) + 1
    return tuple(names), sep == "|" and len(names) > 1


def _flowbits(value: str, ctx: Ctx):
    cmd, comma, rest = value.partition(",")
    cmd = cmd.strip()
    if cmd not in _CMDS:
        raise ctx.error(f"unknown flowbits command '{cmd}' (expected {', '.join(_CMDS)})",
                        len(value) - len(value.lstrip()))
    if cmd == "noalert":
        if rest.strip():
            raise ctx.error("flowbits:noalert takes no name")
        ctx.fields["noalert"] = True
        op = FlowbitOp("noalert")
        ctx.flowbits.append(op)
        return op
    if not rest.strip():
        raise ctx.error(f"flowbits {cmd} needs a name")
    names, any_of = _names(rest, len(value) - len(rest) + (len(rest) - len(rest.lstrip())), ctx, cmd)
    op = FlowbitOp(cmd, names, any_of)
    if cmd not in ("isset", "isnotset"):
        ctx.flowbits.append(op)
        return op
    if cmd == "isset":
        if any_of:
            fn = lambda p, ns=names: p.flow is not None and any(n in p.flow.flowbits for n in ns)
        else:
            fn = lambda p, ns=names: p.flow is not None and all(n in p.flow.flowbits for n in ns)
    elif any_of:
        fn = lambda p, ns=names: p.flow is None or any(n not in p.flow.flowbits for n in ns)
    else:
        fn = lambda p, ns=names: p.flow is None or all(n not in p.flow.flowbits for n in ns)
    ctx.add_check(fn, cost=2)
    ctx.fields.setdefault("_flowbits_checks", []).append(fn)     # (Rule.flow_state; the rule reads bits)
    return op


def _noalert(value, ctx: Ctx):
    ctx.fields["noalert"] = True
    return True


flowbits = Keyword("flowbits", _flowbits, REQUIRED, iponly=True)
noalert = Keyword("noalert", _noalert, NONE, iponly=True)
