"""rules.thresholds and rules.verdict behaviour the mutation run (tests/bench/mutation.py)
found unchecked: the table cap and its eviction count, rate_filter windows and tracks,
what prune removes and when it runs, the stats names; in the verdict stage, matches a
threshold takes out or silences followed by more matches, the bypass keyword on a pass,
which alert a drop embeds, and how an alert whose action a rate_filter changed is logged."""
from __future__ import annotations

import pytest

from rules.addr import parse_addr
from rules.api import Verdict
from rules.detect import Sig
from rules.packet import Packet
from rules.parser import parse_rule
from rules.rule import Suppress, Threshold
from rules.thresholds import ALERT, PRUNE_ABOVE, SILENT, Thresholds
from rules.verdict import decide

A, B, C = 0xC6336401, 0xC6336402, 0xCB007101       # 198.51.100.1, .2, 203.0.113.1
T0 = 1_700_000_000.0


def pkt(ts: float, src: int = A, dst: int = C) -> Packet:
    p = Packet()
    p.ts, p.src, p.dst, p.ipver, p.proto = T0 + ts, src, dst, 4, 17
    return p


def rule(action="alert", sid=1, threshold=None, opts="", **kw):
    r = parse_rule(f'{action} udp any any -> any any (msg:"m"; {opts} sid:{sid};)')
    r.threshold = threshold
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def limit(seconds=60, track="by_src"):
    return Threshold("limit", track, 1, seconds)


# ------------------------------------------------------------------ the table
@pytest.mark.parametrize("cap", [0, 1], ids=["cap-0-means-1", "cap-1"])
def test_a_table_of_one_keeps_only_the_newest_entry(cap):
    th = Thresholds(max_entries=cap)
    r = rule(threshold=limit())
    assert th.judge(r, pkt(0, src=A))[0] == ALERT
    assert th.judge(r, pkt(1, src=B))[0] == ALERT      # evicts A's entry
    assert len(th) == 1 and th.stats() == {"thresholds.active": 1, "thresholds.evicted": 1}
    assert th.judge(r, pkt(2, src=B))[0] == SILENT     # B is remembered
    assert th.judge(r, pkt(3, src=A))[0] == ALERT      # A starts counting again


def test_evictions_are_counted_one_by_one_oldest_first():
    th = Thresholds(max_entries=2)
    assert th.stats() == {"thresholds.active": 0, "thresholds.evicted": 0}
    r = rule(threshold=limit())
    for i, src in enumerate((1, 2, 3, 4, 5)):
        th.judge(r, pkt(i, src=src))
    assert th.stats() == {"thresholds.active": 2, "thresholds.evicted": 3}
    assert th.judge(r, pkt(9, src=5))[0] == SILENT and th.judge(r, pkt(9, src=4))[0] == SILENT
    assert th.judge(r, pkt(9, src=3))[0] == ALERT      # gone: counts again


# ------------------------------------------------------------------ rate_filter
def test_rate_filter_window_end_is_inclusive():
    """A match at exactly start + seconds is still inside the window (as limit's)."""
    th = Thresholds()
    r = rule("alert", threshold=Threshold("rate", "by_rule", 1, 10, new_action="drop", timeout=5))
    assert [th.judge(r, pkt(t))[1] for t in (0, 10)] == ["alert", "drop"]
    th = Thresholds()
    assert [th.judge(r, pkt(t))[1] for t in (0, 10.001)] == ["alert", "alert"]


def test_rate_filter_counts_each_source_apart():
    th = Thresholds()
    r = rule("alert", threshold=Threshold("rate", "by_src", 1, 60, new_action="drop", timeout=30))
    got = [th.judge(r, pkt(t, src=s))[1] for t, s in ((0, A), (1, B), (2, A), (3, B), (4, C))]
    assert got == ["alert", "alert", "drop", "drop", "alert"]


def test_rate_and_limit_of_one_rule_count_apart():
    th = Thresholds()
    r = rule("alert", threshold=Threshold("rate", "by_rule", 1, 60, new_action="drop", timeout=30))
    df = Threshold("df", "by_rule", 1, 60)
    assert th.judge(r, pkt(0))[1] == "alert"
    assert th.allows(df, r, pkt(1)) is False           # the df's first match: its own count
    assert th.judge(r, pkt(2))[1] == "drop"


# ------------------------------------------------------------------ prune
def fill(th: Thresholds, n: int, ts: float = 0.0, seconds: int = 10) -> None:
    r = rule(threshold=limit(seconds))
    for i in range(n):
        th.judge(r, pkt(ts, src=i + 1))


def test_prune_waits_until_the_table_is_past_its_threshold():
    th = Thresholds()
    fill(th, PRUNE_ABOVE)
    th.prune(T0 + 1000)
    assert len(th) == PRUNE_ABOVE                      # not worth a walk yet
    th2 = Thresholds()
    fill(th2, PRUNE_ABOVE + 1)
    th2.prune(T0 + 1000)
    assert len(th2) == 0


def test_prune_removes_only_entries_whose_window_is_over():
    th = Thresholds()
    fill(th, PRUNE_ABOVE, ts=0.0, seconds=10)          # over at T0 + 10
    r = rule(sid=2, threshold=limit(seconds=100))
    th.judge(r, pkt(50, src=A))                        # over at T0 + 150
    th.prune(T0 + 60)
    assert len(th) == 1 and th.judge(r, pkt(60, src=A))[0] == SILENT
    th.prune(T0 + 60)
    assert len(th) == 1                                # below the threshold: no walk


def test_prune_keeps_a_window_until_it_is_over_not_at_its_end():
    th = Thresholds()
    fill(th, PRUNE_ABOVE + 1, ts=0.0, seconds=10)
    th.prune(T0 + 10)                                  # exactly at the end: still inside
    assert len(th) == PRUNE_ABOVE + 1
    th.prune(T0 + 10.5)
    assert len(th) == 0


def test_prune_keeps_a_rate_timeout_until_it_is_over():
    th = Thresholds()
    r = rule("alert", sid=9, threshold=Threshold("rate", "by_rule", 1, 1, new_action="drop", timeout=20))
    th.judge(r, pkt(0))
    assert th.judge(r, pkt(0.5))[1] == "drop"          # timeout from int(T0) on
    fill(th, PRUNE_ABOVE, ts=0.0, seconds=1)
    th.prune(T0 + 20)                                  # 20 s into a 20 s timeout: kept
    assert len(th) == 1
    lim = rule(sid=8, threshold=limit(seconds=100))
    for i in range(PRUNE_ABOVE):                       # fresh entries: the table is past the threshold again
        th.judge(lim, pkt(20, src=i + 1))
    th.prune(T0 + 21)
    assert len(th) == PRUNE_ABOVE and th.judge(r, pkt(21))[1] == "alert"   # the timeout is gone


# ------------------------------------------------------------------ the verdict stage
def sig(action, sid, threshold=None, opts="", **kw):
    return Sig(rule(action, sid, threshold, opts, **kw))


def test_every_thresholded_match_is_counted_and_the_rest_still_runs():
    th = Thresholds()
    out = sig("drop", 1, Threshold("threshold", "by_rule", 5, 60))      # NO_MATCH for the first 4
    quiet = sig("alert", 2, limit())
    later = sig("alert", 3)
    decide([quiet], "ips", set(), th, pkt(0))                           # quiet's one alert
    dec = decide([out, quiet, later], "ips", set(), th, pkt(1))
    assert dec.thresholded == 2                                         # out (taken out) and quiet (silent)
    assert dec.verdict == Verdict.FORWARD and [s.rule.sid for s, _ in dec.alerts] == [3]


def test_a_pass_with_the_bypass_keyword_decides_the_flow():
    p = sig("pass", 1, opts="bypass;")
    dec = decide([p], "ips", set())
    assert dec.bypass is True and dec.passed and dec.verdict == Verdict.FORWARD
    assert decide([sig("pass", 2)], "ips", set()).bypass is False


def test_a_suppressed_pass_lets_the_later_matches_run():
    th = Thresholds()
    p = sig("pass", 1, suppress=(Suppress("by_src", parse_addr("198.51.100.1")),))
    a = sig("alert", 2)
    dec = decide([p, a], "ips", set(), th, pkt(0))
    assert not dec.passed and dec.thresholded == 1
    assert [(s.rule.sid, x) for s, x in dec.alerts] == [(2, "allowed")]


def test_a_drop_that_logs_nothing_embeds_itself_not_an_alert_rule():
    d = sig("drop", 1, opts="noalert;")
    a = sig("alert", 2)
    dec = decide([d, a], "ips", set())
    assert dec.verdict == Verdict.DROP and dec.embed_sig is d
    assert [(s.rule.sid, x) for s, x in dec.alerts] == [(2, "allowed")]


@pytest.mark.parametrize("mode", ["ips", "tap"])
def test_a_drop_rule_a_rate_filter_made_alert_is_blocked_when_another_rule_drops(mode):
    th = Thresholds()
    changed = sig("drop", 1, Threshold("rate", "by_rule", 1, 60, new_action="alert", timeout=30))
    other = sig("drop", 2)
    decide([changed], mode, set(), th, pkt(0))
    dec = decide([changed, other], mode, set(), th, pkt(1))
    assert dec.verdict == Verdict.DROP and dec.sid == 2
    assert [(s.rule.sid, x) for s, x in dec.alerts] == [(1, "blocked"), (2, "blocked" if mode == "ips" else "allowed")]


def test_in_tap_mode_a_rate_filter_drop_logs_blocked():
    """The changed action's alert follows the packet's fate (dropped: blocked), not the mode."""
    th = Thresholds()
    a = sig("alert", 1, Threshold("rate", "by_rule", 1, 60, new_action="drop", timeout=30))
    decide([a], "tap", set(), th, pkt(0))
    dec = decide([a], "tap", set(), th, pkt(1))
    assert dec.verdict == Verdict.DROP and [x for _, x in dec.alerts] == ["blocked"]
