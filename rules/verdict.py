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

With `thresholds` (rules.thresholds), each match goes through the rule's
suppressions and threshold slot first, in signature order, as Suricata's
alert stage does: a NO_MATCH result takes the match out (no alert, no
action), SILENT keeps its action and drops its alert, and a rate_filter may
change its action.  A pass -- a pass rule, or a match a rate_filter turned
into pass -- ends the evaluation: the matches after it do nothing, and it
does not undo a drop decided before it.  An alert whose action a
rate_filter changed is "blocked" when the packet is dropped, else
"allowed"; a drop decided by such a match has the reason "rate_filter".
"""
from __future__ import annotations

from dataclasses import dataclass, field

from rules.api import Verdict
from rules.rule import ACTION_RANK
from rules.thresholds import ALERT, NO_MATCH

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
    drop_sig: object = None           # its signature
    embed_sig: object = None          # the signature whose alert a drop event embeds (Suricata's choice)
    reason: str = "rule"              # why a drop: "rule", or "rate_filter" when a rate_filter made it one
    flow: str = ""                    # "drop" | "pass" | "": what the flow is marked with
    reject: str = ""                  # the deciding reject action (frames to build), or ""
    passed: bool = False              # a pass ended the evaluation (nothing after it counts)
    bypass: bool = False              # a matching rule has the `bypass` keyword: the flow is decided
    thresholded: int = 0              # matches whose alert a threshold or suppression withheld
    alerts: list = field(default_factory=list)   # (sig, "blocked" | "allowed") to log


def flow_scoped(sig, stream_hits: set) -> bool:
    """Does this signature's drop/pass hold for the whole flow?"""
    return sig.iponly or id(sig) in stream_hits


def decide(matches: list, mode: str, stream_hits: set, thresholds=None, pkt=None) -> Decision:
    """`matches`: the matching signatures, highest-ranked first (rules.detect);
    `stream_hits`: the ids of those whose payload matched on the TCP stream;
    `thresholds` (rules.thresholds.Thresholds): judge each match of a rule with a
    threshold or suppression on `pkt`."""
    d = Decision()
    if not matches:
        return d
    ips = mode == "ips"
    top_rank = -1
    logged: list = []                 # (sig, acting, changed) whose alert is logged
    for s in matches:
        r = s.rule
        action = r.action
        res = ALERT
        if thresholds is not None and (r.threshold is not None or r.suppress):
            res, action = thresholds.judge(r, pkt)
            if res != ALERT:
                d.thresholded += 1
                if res == NO_MATCH:
                    continue
        if action == "pass":
            if d.verdict == Verdict.FORWARD:
                # (Suricata: a pass after a drop on the same packet does not apply)
                if not d.flow and flow_scoped(s, stream_hits):
                    d.flow = "pass"
                if r.bypass:
                    d.bypass = True
            if res == ALERT:
                d.passed = True
                break
            continue                  # a pass whose threshold withheld it (SILENT): the rest still runs
        v_top, v_other, acting, mark = ACTIONS[action]
        changed = action != r.action
        if acting:
            rank = ACTION_RANK[action]
            if top_rank < 0:
                top_rank = rank
            v = v_top if rank == top_rank else v_other
            if d.verdict == Verdict.FORWARD:
                d.sid, d.drop_sig = r.sid, s
                d.reason = "rate_filter" if changed else "rule"
            if v == Verdict.REJECT and not d.reject:
                d.reject = action
            d.verdict = max(d.verdict, v)
            if not d.flow and flow_scoped(s, stream_hits):
                d.flow = mark
        if r.bypass:
            d.bypass = True
        if res == ALERT and not r.noalert:
            logged.append((s, acting, changed))
    dropped = d.verdict != Verdict.FORWARD
    for s, acting, changed in logged:
        blocked = dropped if changed else (acting and ips)
        d.alerts.append((s, "blocked" if blocked else "allowed"))
        if acting and d.embed_sig is None:
            d.embed_sig = s
    if d.embed_sig is None:
        d.embed_sig = d.drop_sig
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
