"""What the state keywords share: the operation interface and the engine's state they work on.

Most keywords compile to a check `f(pkt)` or a payload item.  xbits and flowint read and
write state that outlives the packet and is not on it -- bits per host and per IP pair
(rules.keywords.xbits), integers per flow (rules.keywords.flowint) -- so their parse
functions return a `StateOp` instead (kept in `Rule.options`), and the detect stage
(rules.detect.Sig) runs them with the engine's `VarState`:

- a read op (``read`` True: xbits isset/isnotset, flowint comparisons) is part of the
  match, tested after the rule's packet checks and before its payload: `op.test(pkt, flow,
  state) -> bool`;
- a write op (xbits set/unset/toggle, flowint =/+/-) is a post-match operation, applied
  in rule order as soon as the rule matched (before its detection_filter), so a rule later
  in signature order sees it on the same packet: `op.apply(pkt, flow, state)`.

`flow` is the flow the detect stage inspects the packet in, None when not flow-tracked.
Time is the packet's (`pkt.ts`), never a clock.  One `VarState` per engine; a rule reload
keeps it (rules.engine.Engine.adopt_rules), as Suricata keeps its host, IP-pair and flow
variables across reloads.

Suricata orders signatures by these keywords too (detect-engine-sigorder.c): after the
action and flowbits, by flowint use (rules that only set, set and read, only read, then
rules without), then by host-bits and IP-pair-bits use (`order_key`).
"""
from __future__ import annotations


class StateOp:
    """One xbits / flowint operation of a rule (frozen dataclass subclasses)."""

    __slots__ = ()
    read = False           # True: a condition of the match; False: applied after the match

    def test(self, pkt, flow, state: "VarState") -> bool:
        raise NotImplementedError

    def apply(self, pkt, flow, state: "VarState") -> None:
        raise NotImplementedError


class VarState:
    """The engine's state for the state keywords: host/IP-pair bits and flow integers."""

    __slots__ = ("xbits", "flowints")

    def __init__(self, xbits_max: int | None = None) -> None:
        from rules.keywords.flowint import FlowInts
        from rules.keywords.xbits import MAX_ENTRIES, XbitTable

        self.xbits = XbitTable(MAX_ENTRIES if xbits_max is None else xbits_max)
        self.flowints = FlowInts()

    def forget(self, flow_id: int) -> None:
        """The flow ended: its integers go."""
        self.flowints.forget(flow_id)

    def prune(self, now: float) -> None:
        self.xbits.prune(now)

    def stats(self) -> dict[str, int]:
        out = self.xbits.stats()
        out.update(self.flowints.stats())
        return out


# Suricata's ordering values (detect-engine-sigorder.c: NOT_USED 1, READ 2, SET_READ 3, SET 4;
# the higher comes first)
NOT_USED, READ, SET_READ, SET = 1, 2, 3, 4


def order_key(ops) -> tuple[int, int, int]:
    """(flowint, host bits, IP-pair bits) ordering values of a rule's state ops, each to be
    sorted highest first.  As Suricata 7.0.10 computes them: flowint counts its reads and
    its writes; for xbits only the reads count (SCSigGetXbitsType looks for the writes of
    the `hostbits` keyword, never of `xbits`), so a rule that only sets an xbit sorts with
    the rules that use none, after the rules that check one (checked with suricata -r: a
    rule setting a bit and a rule checking it, matching the same packet, the check does not
    see the bit whatever their priorities)."""
    from rules.keywords.flowint import FlowintOp
    from rules.keywords.xbits import XbitOp

    fi_r = fi_w = host_r = pair_r = 0
    for op in ops:
        if isinstance(op, FlowintOp):
            if op.read:
                fi_r += 1
            else:
                fi_w += 1
        elif isinstance(op, XbitOp) and op.read:
            if op.track == "ip_pair":
                pair_r += 1
            else:
                host_r += 1
    if fi_r and fi_w:
        fi = SET_READ
    elif fi_w:
        fi = SET
    elif fi_r:
        fi = READ
    else:
        fi = NOT_USED
    return fi, READ if host_r else NOT_USED, READ if pair_r else NOT_USED
