"""Threshold state: threshold, detection_filter, threshold.config's rate_filter and suppress.

Windows run on packet time (`pkt.ts`), never a clock.  One table per engine:
`by_src`/`by_dst` counts are per address (and IP version), `by_both` per
address pair in either direction (Suricata's IP pair), `by_rule` per rule.
Expired entries are pruned by `prune(now)` (the engine calls it from `tick`
when the table grows).  The table holds at most `max_entries` (MAX_ENTRIES,
about 280 bytes each: 18 MB per engine at the cap): a flood from ever new
addresses inside one window would otherwise grow it without bound.  Past the
cap the oldest entry goes (counted `thresholds.evicted`), so that address
starts counting again, as a host Suricata's host table recycled does.

`judge(rule, pkt)` is Suricata 7's alert-time threshold handling of one match
(detect-engine-threshold.c, detect-engine-alert.c), returning what happens to
it and the action it takes:
- NO_MATCH: as if the rule had not matched (no alert, no action);
- ALERT: the alert is logged and the action applies;
- SILENT: the action applies, the alert is not logged.
An address suppression that matches is SILENT (and the threshold is not
counted); then the rule's threshold slot:
- limit: ALERT up to `count` times per window, SILENT after;
- threshold: ALERT every `count`-th match in a window, NO_MATCH otherwise;
- both: ALERT at the `count`-th match of a window, NO_MATCH before, SILENT after;
- rate (rate_filter): always ALERT; once more than `count` matches fall in a
  window, the action becomes `new_action` for `timeout` seconds (counted in
  whole seconds of packet time, as Suricata).  The match that ends a timeout
  keeps the rule's action and is not counted; the window is not reset by a
  timeout, so a match still inside it sets the new action again.
A packet without IP is never thresholded.  detection_filter ("df") is applied
at match time by rules.detect through `allows`: it matches once more than
`count` matches fell in the window.  All checked against Suricata 7.0.10
(tests/replay/differential thresholds, tests/replay/threshold_config).
"""
from __future__ import annotations

from rules.rule import Rule, Threshold

PRUNE_ABOVE = 4096        # entries kept before `prune` is worth its walk
MAX_ENTRIES = 65536       # entries at most; past it the oldest goes (Suricata bounds them with host.memcap)

NO_MATCH, ALERT, SILENT = 0, 1, 2

# new_action -> the action the match takes (log and sdrop change nothing, as in Suricata 7)
RATE_ACTIONS = {"alert": "alert", "drop": "drop", "pass": "pass", "reject": "reject"}


def _key(track: str, pkt) -> tuple:
    if track == "by_src":
        return (pkt.ipver, pkt.src)
    if track == "by_dst":
        return (pkt.ipver, pkt.dst)
    if track == "by_both":
        a, b = pkt.src, pkt.dst
        return (pkt.ipver, a, b) if a <= b else (pkt.ipver, b, a)
    return ()


def suppressed(r: Rule, pkt) -> bool:
    """Does one of the rule's address suppressions cover this packet?"""
    for s in r.suppress:
        t = s.track
        if t == "by_src":
            if s.addrs.contains(pkt.ipver, pkt.src):
                return True
        elif t == "by_dst":
            if s.addrs.contains(pkt.ipver, pkt.dst):
                return True
        elif s.addrs.contains(pkt.ipver, pkt.src) or s.addrs.contains(pkt.ipver, pkt.dst):
            return True
    return False


class Thresholds:
    __slots__ = ("_state", "evicted", "max_entries")

    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        # (kind, gid, sid, key) -> [window start, count, seconds, timeout start or None, timeout];
        # insertion order = oldest first
        self._state: dict[tuple, list] = {}
        self.max_entries = max(1, max_entries)
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._state)

    def _new(self, k: tuple, st: list) -> None:
        """A new entry; at the cap the oldest one goes first."""
        state = self._state
        if len(state) >= self.max_entries:
            del state[next(iter(state))]
            self.evicted += 1
        state[k] = st

    def stats(self) -> dict[str, int]:
        return {"thresholds.active": len(self._state), "thresholds.evicted": self.evicted}

    def judge(self, r: Rule, pkt) -> tuple[int, str]:
        """(NO_MATCH | ALERT | SILENT, the action) for one match of `r` on `pkt`."""
        if not pkt.ipver:
            return ALERT, r.action
        if r.suppress and suppressed(r, pkt):
            return SILENT, r.action
        t = r.threshold
        if t is None:
            return ALERT, r.action
        if t.type == "rate":
            return ALERT, self._rate(t, r, pkt)
        return self.count(t, r, pkt), r.action

    def allows(self, t: Threshold, r: Rule, pkt) -> bool:
        """detection_filter (and, for callers that only ask yes/no, any counting type):
        True when the match goes through."""
        return self.count(t, r, pkt) == ALERT

    def count(self, t: Threshold, r: Rule, pkt) -> int:
        """One match counted against a limit/threshold/both/df slot."""
        k = (t.type, r.gid, r.sid, _key(t.track, pkt))
        now = pkt.ts
        n = t.count
        kind = t.type
        st = self._state.get(k)
        if st is None:
            if kind == "threshold" and n == 1:
                return ALERT                   # every match alerts: nothing to remember
            self._new(k, [now, 1, t.seconds, None, 0])
            if kind == "limit":
                return ALERT
            if kind == "both" and n == 1:
                return ALERT
            return NO_MATCH
        if now > st[0] + t.seconds:            # the window is over: this match starts a new one
            st[0], st[1] = now, 1
            if kind == "limit" or (kind == "both" and n == 1):
                return ALERT
            return NO_MATCH
        st[1] += 1
        cnt = st[1]
        if kind == "limit":
            return ALERT if cnt <= n else SILENT
        if kind == "threshold":
            if cnt >= n:
                st[1] = 0
                return ALERT
            return NO_MATCH
        if kind == "both":
            if cnt == n:
                return ALERT
            return SILENT if cnt > n else NO_MATCH
        return ALERT if cnt > n else NO_MATCH       # df

    def _rate(self, t: Threshold, r: Rule, pkt) -> str:
        k = ("rate", r.gid, r.sid, _key(t.track, pkt))
        now = pkt.ts
        st = self._state.get(k)
        if st is None:
            self._new(k, [now, 1, t.seconds, None, t.timeout])
            return r.action
        new = RATE_ACTIONS.get(t.new_action, r.action)
        if st[3] is not None:                  # the new action holds
            if int(now) - st[3] > t.timeout:
                st[3] = None
                return r.action
            return new
        if now > st[0] + t.seconds:
            st[0], st[1] = now, 1
            return r.action
        st[1] += 1
        if st[1] > t.count:
            st[3] = int(now)
            return new
        return r.action

    def prune(self, now: float) -> None:
        if len(self._state) <= PRUNE_ABOVE:
            return
        dead = [k for k, v in self._state.items()
                if now - v[0] > v[2] and (v[3] is None or int(now) - v[3] > v[4])]
        for k in dead:
            del self._state[k]
