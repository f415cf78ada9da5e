"""flowint: unsigned 32-bit integers per flow.

    flowint:<name>,<=|+|->,<value|other name>;            applied when the rule matched
    flowint:<name>,<==|!=|<|<=|>|>=>,<value|other name>;   a condition of the match
    flowint:<name>,<isset|notset|isnotset>;                a condition of the match

Suricata 7.0.10's behaviour (detect-flowint.c, checked with suricata -r in
tests/replay/differential app_keywords):
- the value is matched with Suricata's expression (`_SYNTAX`): a name starts with a letter
  and has at least two characters (letters, digits, '_', '.', '/'); a value is 1 to 10
  digits up to 4294967295, or another variable's name (a letter then at least one letter,
  digit or '_', no dots); the comparisons and =, +, - need one, isset/notset/isnotset
  ignore it;
- a comparison needs the variable set (no match otherwise); a variable named as the value
  counts 0 when not set;
- `+` on a variable not set sets it to the value; `-` on one not set does nothing; both wrap
  modulo 2**32 (uint32 arithmetic);
- every operation needs a flow: without one nothing matches, isnotset included;
- signature order: rules that set a flowint, then that set and check, then that only check,
  before the rules without (rules.keywords._state.order_key).

The values live in the engine's `VarState` per flow id and go when the flow ends.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from types import MappingProxyType

from rules.keywords._base import REQUIRED, Ctx, Keyword
from rules.keywords._state import StateOp

_SYNTAX = re.compile(r"^\s*([a-zA-Z][\w\d_./]+)\s*,\s*([+=-]{1}|==|!=|<|<=|>|>=|isset|notset|isnotset)"
                     r"\s*,?\s*([a-zA-Z][\w\d]+|[\d]{1,10})?\s*$", re.ASCII)
_U32 = (1 << 32) - 1
_READS = frozenset(("==", "!=", "<", "<=", ">", ">=", "isset", "isnotset"))
_NONE = MappingProxyType({})    # FlowInts.get's answer for a flow without values
_COMPARE = {
    "==": lambda a, b: a == b, "!=": lambda a, b: a != b, "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b, ">": lambda a, b: a > b, ">=": lambda a, b: a >= b,
}


@dataclass(frozen=True, slots=True)
class FlowintOp(StateOp):
    name: str
    op: str                      # = + - == != < <= > >= isset isnotset
    value: int = 0
    var: str = ""                # the value is this variable's (0 when not set)

    @property
    def read(self) -> bool:
        return self.op in _READS

    def _target(self, vals: dict) -> int:
        return vals.get(self.var, 0) if self.var else self.value

    def test(self, pkt, flow, state) -> bool:
        if flow is None:
            return False
        vals = state.flowints.get(flow.flow_id)
        cur = vals.get(self.name)
        if self.op == "isset":
            return cur is not None
        if self.op == "isnotset":
            return cur is None
        return cur is not None and _COMPARE[self.op](cur, self._target(vals))

    def apply(self, pkt, flow, state) -> None:
        if flow is None:
            return
        vals = state.flowints.of(flow.flow_id)
        t = self._target(vals)
        cur = vals.get(self.name)
        if self.op == "=":
            vals[self.name] = t
        elif self.op == "+":
            vals[self.name] = t if cur is None else (cur + t) & _U32
        elif cur is not None:
            vals[self.name] = (cur - t) & _U32


class FlowInts:
    """flow id -> {name: value}; an entry goes when its flow ends (`forget`)."""

    __slots__ = ("_by_flow",)

    def __init__(self) -> None:
        self._by_flow: dict[int, dict[str, int]] = {}

    def get(self, flow_id: int):
        """The flow's values, to read (an empty mapping when it has none)."""
        return self._by_flow.get(flow_id, _NONE)

    def of(self, flow_id: int) -> dict[str, int]:
        """The flow's values, to write."""
        vals = self._by_flow.get(flow_id)
        if vals is None:
            vals = self._by_flow[flow_id] = {}
        return vals

    def forget(self, flow_id: int) -> None:
        self._by_flow.pop(flow_id, None)

    def stats(self) -> dict[str, int]:
        return {"flowint.flows": sum(1 for v in self._by_flow.values() if v)}


def _flowint(value: str, ctx: Ctx):
    m = _SYNTAX.match(value)
    if m is None:
        raise ctx.error("flowint: expected <name>,<modifier>[,<value>] (modifiers: = + - == != < <= > >= isset "
                        "notset isnotset; a name starts with a letter and has 2 characters at least)")
    name, op, target = m.groups()
    if op == "notset":
        op = "isnotset"
    num, var = 0, ""
    if op not in ("isset", "isnotset"):
        if target is None:
            raise ctx.error(f"flowint {op} needs a value or a variable name", m.end(2))
        if target[0].isdigit():
            num = int(target)
            if num > _U32:
                raise ctx.error(f"flowint value {num} out of range (0..{_U32})", m.start(3))
        else:
            var = target
    return FlowintOp(name, op, num, var)


flowint = Keyword("flowint", _flowint, REQUIRED)
