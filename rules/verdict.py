"""The verdict stage: what the matches of one packet mean for it and its flow.

A pure function of the matching signatures (in signature order, so the
highest-ranked action first), the mode and whether the payload matched was
the TCP stream; it changes nothing itself.  The engine applies the
`Decision`: the flow mark, the threshold on alerts, the reject frames.

Suricata 7's semantics, checked against recorded Suricata decisions in
tests/replay/differential:
- the highest-ranked matching action decides the packet; a matching pass
  suppresses the alerts of every other match on the packet (pass itself
  logs nothing);
- drop and reject drop the packet; alert rules matching alongside still log
  ("allowed"), drop/reject rules log "blocked" in ips mode ("allowed" in
  tap/ids mode, where nothing is enforced);
- drop outranks reject: a reject answers (RST / ICMP unreachable) only when
  a reject rule decides the packet;
- drop, reject and pass apply to the whole flow when the rule is IP-only or
  its payload matched on the TCP stream (a stream match); other matches
  (packet keywords, packet-only rules, UDP payload) act on the packet alone.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rules.api import Verdict

# action -> (verdict when it decides the packet, verdict when a higher action decides,
#            logged as "blocked" in ips mode, flow mark when flow-scoped)
ACTIONS: dict[str, tuple[Verdict, Verdict, bool, str]] = {
    "pass":       (Verdict.FORWARD, Verdict.FORWARD, False, "pass"),
    "drop":       (Verdict.DROP, Verdict.DROP, True, "drop"),
    "reject":     (Verdict.REJECT, Verdict.DROP, True, "drop"),
    "rejectsrc":  (Verdict.REJECT, Verdict.DROP, True, "drop"),
    "rejectdst":  (Verdict.REJECT, Verdict.DROP, True, "drop"),
    "rejectboth": (Verdict.REJECT, Verdict.DROP, True, "drop"),
    "alert":      (Verdict.FORWARD, Verdict.FORWARD, False, ""),
}


@dataclass(slots=True)
class Decision:
    verdict: Verdict = Verdict.FORWARD
    sid: int = 0                      # the rule that decided a drop/reject (the first acting one)
    flow: str = ""                    # "drop" | "pass" | "": what the flow is marked with
    reject: str = ""                  # the deciding reject action (frames to build), or ""
    passed: bool = False              # a pass rule decided: nothing is logged
    bypass: bool = False              # a matching rule has the `bypass` keyword: the flow is decided
    alerts: list = field(default_factory=list)   # (sig, "blocked" | "allowed") to log, thresholds not applied


def flow_scoped(sig, stream_hits: set) -> bool:
    """Does this signature's drop/pass hold for the whole flow?"""
    return sig.iponly or id(sig) in stream_hits


def decide(matches: list, mode: str, stream_hits: set) -> Decision:
    """`matches`: the matching signatures, highest-ranked first (rules.detect);
    `stream_hits`: the ids of those whose payload matched on the TCP stream."""
    d = Decision()
    if not matches:
        return d
    top = matches[0]
    if top.rule.action == "pass":
        d.passed = True
        d.bypass = top.rule.bypass
        if flow_scoped(top, stream_hits):
            d.flow = "pass"
        return d
    ips = mode == "ips"
    for s in matches:
        r = s.rule
        v_top, v_other, acting, mark = ACTIONS[r.action]
        if acting:
            v = v_top if s.rank == top.rank else v_other
            if d.verdict == Verdict.FORWARD:
                d.sid = r.sid
            if v == Verdict.REJECT and not d.reject:
                d.reject = r.action
            if v > d.verdict:
                d.verdict = v
            if not d.flow and flow_scoped(s, stream_hits):
                d.flow = mark
        if r.bypass:
            d.bypass = True
        if not r.noalert:
            d.alerts.append((s, "blocked" if acting and ips else "allowed"))
    return d


@dataclass(frozen=True, slots=True)
class PolicyEffect:
    verdict: Verdict              # what happens to the packet
    flow: str                     # "drop" | "pass" | "": what the flow is marked with
    ignore: bool = False          # nothing happens: detection goes on


# What each (resolved) exception policy does, as Suricata 7 documents them.  bypass is
# pass-flow here: the flow leaves detection (taking it out of the packet path altogether
# is flow bypass, rules.settings notes it).
POLICY_EFFECTS: dict[str, PolicyEffect] = {
    "drop-packet": PolicyEffect(Verdict.DROP, ""),
    "drop-flow": PolicyEffect(Verdict.DROP, "drop"),
    "reject": PolicyEffect(Verdict.REJECT, "drop"),
    "pass-packet": PolicyEffect(Verdict.FORWARD, ""),
    "pass-flow": PolicyEffect(Verdict.FORWARD, "pass"),
    "bypass": PolicyEffect(Verdict.FORWARD, "pass"),
    "ignore": PolicyEffect(Verdict.FORWARD, "", ignore=True),
}
