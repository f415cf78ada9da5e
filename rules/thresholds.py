"""threshold and detection_filter state: counts per rule and tracked key in time windows.

Windows run on packet time (`pkt.ts`), never a clock.  One table per engine:
`by_src`/`by_dst`/`by_both` counts are per address (and IP version),
`by_rule` per rule.  Expired windows are pruned by `prune(now)` (the engine
calls it from `tick` when the table grows).
"""
from __future__ import annotations

from rules.rule import Rule, Threshold

PRUNE_ABOVE = 4096        # entries kept before `prune` is worth its walk


class Thresholds:
    __slots__ = ("_state",)

    def __init__(self) -> None:
        self._state: dict[tuple, list] = {}       # (kind, gid, sid, key) -> [first_ts, count, seconds]

    def __len__(self) -> int:
        return len(self._state)

    def allows(self, t: Threshold, r: Rule, pkt) -> bool:
        """True when the alert (or, for detection_filter, the match) goes through."""
        track = t.track
        if track == "by_src":
            key = (pkt.ipver, pkt.src)
        elif track == "by_dst":
            key = (pkt.ipver, pkt.dst)
        elif track == "by_both":
            key = (pkt.ipver, pkt.src, pkt.dst)
        else:
            key = ()
        k = (t.type, r.gid, r.sid, key)
        now = pkt.ts
        st = self._state.get(k)
        n = t.count
        kind = t.type
        if st is None or now - st[0] > t.seconds:
            self._state[k] = st = [now, 1, t.seconds]
        else:
            st[1] += 1
        cnt = st[1]
        if kind == "limit":
            return cnt <= n
        if kind == "threshold":
            if cnt >= n:
                st[1] = 0
                return True
            return False
        if kind == "both":
            return cnt == n
        # detection_filter ("df"): match once the count is exceeded in the window
        return cnt > n

    def prune(self, now: float) -> None:
        if len(self._state) <= PRUNE_ABOVE:
            return
        dead = [k for k, v in self._state.items() if now - v[0] > v[2]]
        for k in dead:
            del self._state[k]
