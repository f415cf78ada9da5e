"""Threshold state (rules.thresholds) and the verdict stage with it (rules.verdict.decide):
Suricata 7's alert-time handling of limit / threshold / both / detection_filter,
rate_filter, suppress; the sequences are those Suricata 7.0.10 logged on
tests/replay/threshold_config."""
from __future__ import annotations

import pytest

from rules.addr import parse_addr
from rules.api import Verdict
from rules.detect import Sig
from rules.packet import Packet
from rules.parser import parse_rule
from rules.rule import Suppress, Threshold
from rules.thresholds import ALERT, NO_MATCH, PRUNE_ABOVE, SILENT, Thresholds
from rules.verdict import decide

A, B, C = 0xC6336401, 0xC6336402, 0xCB007101       # 198.51.100.1, .2, 203.0.113.1
T0 = 1_700_000_000.0


def pkt(ts: float, src: int = A, dst: int = C, ipver: int = 4) -> Packet:
    p = Packet()
    p.ts, p.src, p.dst, p.ipver, p.proto = T0 + ts, src, dst, ipver, 17
    return p


def rule(action: str = "alert", sid: int = 1, threshold: Threshold | None = None, **kw):
    r = parse_rule(f'{action} udp any any -> any any (msg:"m"; sid:{sid};)')
    r.threshold = threshold
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def seq(kind: str, count: int, times, track: str = "by_src", seconds: int = 10):
    th, r = Thresholds(), rule(threshold=Threshold(kind, track, count, seconds))
    return [th.judge(r, pkt(t))[0] for t in times]


@pytest.mark.parametrize("kind,count,times,expected", [
    pytest.param("limit", 2, (0, 1, 2, 3, 11.5), [ALERT, ALERT, SILENT, SILENT, ALERT], id="limit"),
    pytest.param("threshold", 3, (0, 1, 2, 3, 4, 5, 6), [NO_MATCH, NO_MATCH, ALERT, NO_MATCH, NO_MATCH, ALERT, NO_MATCH],
                 id="threshold"),
    pytest.param("threshold", 1, (0, 1, 2), [ALERT, ALERT, ALERT], id="threshold-1"),
    pytest.param("both", 2, (0, 1, 2, 3), [NO_MATCH, ALERT, SILENT, SILENT], id="both"),
    pytest.param("both", 1, (0, 1, 20), [ALERT, SILENT, ALERT], id="both-1-window-over"),
    pytest.param("threshold", 3, (0, 1, 20, 21, 22), [NO_MATCH, NO_MATCH, NO_MATCH, NO_MATCH, ALERT],
                 id="threshold-window-over-restarts"),
])
def test_counting_types(kind, count, times, expected):
    assert seq(kind, count, times) == expected


def test_window_end_is_inclusive():
    # Suricata: a match at exactly start + seconds is still inside the window
    assert seq("limit", 1, (0, 10, 10.000001)) == [ALERT, SILENT, ALERT]


def test_detection_filter_allows():
    th, r = Thresholds(), rule()
    df = Threshold("df", "by_src", 2, 60)
    assert [th.allows(df, r, pkt(t)) for t in range(4)] == [False, False, True, True]


def test_tracks():
    th = Thresholds()
    by_src = rule(sid=1, threshold=Threshold("limit", "by_src", 1, 60))
    by_dst = rule(sid=2, threshold=Threshold("limit", "by_dst", 1, 60))
    both = rule(sid=3, threshold=Threshold("limit", "by_both", 1, 60))
    by_rule = rule(sid=4, threshold=Threshold("limit", "by_rule", 1, 60))
    assert [th.judge(by_src, p)[0] for p in (pkt(0, A, C), pkt(1, B, C), pkt(2, A, B))] == [ALERT, ALERT, SILENT]
    assert [th.judge(by_dst, p)[0] for p in (pkt(0, A, C), pkt(1, B, C), pkt(2, A, B))] == [ALERT, SILENT, ALERT]
    # by_both: one count for an address pair in either direction (Suricata's IP pair)
    assert [th.judge(both, p)[0] for p in (pkt(0, A, C), pkt(1, C, A), pkt(2, A, B))] == [ALERT, SILENT, ALERT]
    assert [th.judge(by_rule, p)[0] for p in (pkt(0, A, C), pkt(1, B, A))] == [ALERT, SILENT]
    # the same number as an IPv6 address is another host
    assert th.judge(by_src, pkt(3, A, C, ipver=6))[0] == ALERT


def test_rate_filter_timeline():
    """count 2 in 10 s, new_action drop, timeout 5 s in whole seconds of packet time: the
    sequence Suricata 7.0.10 logged for sid 1010 of tests/replay/threshold_config."""
    th = Thresholds()
    r = rule(threshold=Threshold("rate", "by_src", 2, 10, new_action="drop", timeout=5))
    times = (0.6, 1.6, 2.6, 3.6, 7.6, 8.7, 8.9, 9.6, 10.9, 22.0, 23.0, 24.0, 25.0)
    got = [th.judge(r, pkt(t)) for t in times]
    assert all(res == ALERT for res, _ in got)
    assert [a for _, a in got] == ["alert", "alert", "drop", "drop", "drop", "alert", "drop", "drop", "drop",
                                   "alert", "alert", "alert", "drop"]


@pytest.mark.parametrize("new_action,expected", [("alert", "alert"), ("reject", "reject"), ("pass", "pass"),
                                                 ("log", "drop"), ("sdrop", "drop")])
def test_rate_filter_new_actions(new_action, expected):
    th = Thresholds()
    r = rule("drop", threshold=Threshold("rate", "by_rule", 1, 60, new_action=new_action, timeout=30))
    assert [th.judge(r, pkt(t))[1] for t in (0, 1)] == ["drop", expected]


@pytest.mark.parametrize("track,src,dst,silent", [
    ("by_src", A, C, True), ("by_src", C, A, False),
    ("by_dst", C, A, True), ("by_dst", A, C, False),
    ("by_either", A, C, True), ("by_either", C, A, True), ("by_either", C, B, False),
])
def test_suppress(track, src, dst, silent):
    th = Thresholds()
    r = rule(threshold=Threshold("limit", "by_rule", 1, 60),
             suppress=(Suppress(track, parse_addr("198.51.100.1")),))
    assert th.judge(r, pkt(0, src, dst))[0] == (SILENT if silent else ALERT)
    # a suppressed match is not counted against the threshold
    assert len(th) == (0 if silent else 1)


def test_non_ip_packet_is_never_thresholded():
    th = Thresholds()
    r = rule(threshold=Threshold("threshold", "by_src", 5, 60))
    assert th.judge(r, pkt(0, ipver=0)) == (ALERT, "alert") and len(th) == 0


def test_prune_keeps_rate_entries_in_their_timeout():
    th = Thresholds()
    rate = rule(sid=1, threshold=Threshold("rate", "by_src", 1, 1, new_action="drop", timeout=1000))
    lim = rule(sid=2, threshold=Threshold("limit", "by_src", 1, 1))
    th.judge(rate, pkt(0))
    assert th.judge(rate, pkt(0.5))[1] == "drop"
    for i in range(PRUNE_ABOVE + 1):
        th.judge(lim, pkt(0, src=i))
    th.prune(T0 + 100)
    assert len(th) == 1 and th.judge(rate, pkt(100))[1] == "drop"


# ------------------------------------------------------------------ the verdict stage with thresholds
def sig(action, sid, threshold=None, **kw):
    return Sig(rule(action, sid, threshold, **kw))


def rate(new_action, count=1):
    return Threshold("rate", "by_rule", count, 60, new_action=new_action, timeout=30)


def test_threshold_below_count_takes_the_match_out():
    d = sig("drop", 1, Threshold("threshold", "by_src", 2, 60))
    th = Thresholds()
    first = decide([d], "ips", set(), th, pkt(0))
    second = decide([d], "ips", set(), th, pkt(1))
    assert (first.verdict, first.alerts, first.thresholded) == (Verdict.FORWARD, [], 1)
    assert second.verdict == Verdict.DROP and [(s.rule.sid, a) for s, a in second.alerts] == [(1, "blocked")]


def test_silent_drop_still_drops_and_embeds_its_alert():
    d = sig("drop", 1, Threshold("limit", "by_src", 1, 60))
    th = Thresholds()
    decide([d], "ips", set(), th, pkt(0))
    dec = decide([d], "ips", set(), th, pkt(1))
    assert (dec.verdict, dec.alerts, dec.reason, dec.sid) == (Verdict.DROP, [], "rule", 1)
    assert dec.embed_sig is d


def test_rate_filter_drop_is_blocked_with_its_reason():
    a = sig("alert", 1, rate("drop"))
    th = Thresholds()
    first = decide([a], "ips", set(), th, pkt(0))
    second = decide([a], "ips", set(), th, pkt(1))
    assert (first.verdict, [x for _, x in first.alerts]) == (Verdict.FORWARD, ["allowed"])
    assert (second.verdict, second.reason, [x for _, x in second.alerts]) == (Verdict.DROP, "rate_filter", ["blocked"])


def test_rate_filter_alert_on_a_drop_rule_is_allowed_and_forwards():
    d = sig("drop", 1, rate("alert"))
    th = Thresholds()
    decide([d], "ips", set(), th, pkt(0))
    dec = decide([d], "ips", set(), th, pkt(1))
    assert (dec.verdict, [x for _, x in dec.alerts]) == (Verdict.FORWARD, ["allowed"])


def test_rate_filter_pass_ends_the_evaluation():
    p = sig("alert", 1, rate("pass"))
    later = sig("alert", 2)
    th = Thresholds()
    first = decide([p, later], "ips", set(), th, pkt(0))
    second = decide([p, later], "ips", set(), th, pkt(1))
    assert [s.rule.sid for s, _ in first.alerts] == [1, 2] and not first.passed
    assert second.alerts == [] and second.passed


def test_a_pass_after_a_drop_does_not_undo_it():
    d = sig("drop", 1)
    p = sig("alert", 2, rate("pass"))
    th = Thresholds()
    decide([p], "ips", set(), th, pkt(0))
    dec = decide([d, p], "ips", set(), th, pkt(1))            # header-only rules: flow-scoped
    assert (dec.verdict, dec.flow, dec.passed) == (Verdict.DROP, "drop", True)
    assert [(s.rule.sid, a) for s, a in dec.alerts] == [(1, "blocked")]
    alone = decide([p], "ips", set(), th, pkt(2))
    assert (alone.verdict, alone.flow, alone.alerts) == (Verdict.FORWARD, "pass", [])


def test_rate_filter_reject_answers():
    a = sig("alert", 1, rate("reject"))
    th = Thresholds()
    decide([a], "ips", set(), th, pkt(0))
    dec = decide([a], "ips", set(), th, pkt(1))
    assert (dec.verdict, dec.reject, dec.reason) == (Verdict.REJECT, "reject", "rate_filter")


def test_noalert_drop_embeds_a_later_logged_drop():
    quiet = sig("drop", 1, noalert=True)
    loud = sig("drop", 2)
    dec = decide([quiet, loud], "ips", set(), Thresholds(), pkt(0))
    assert dec.sid == 1 and dec.embed_sig is loud and [s.rule.sid for s, _ in dec.alerts] == [2]


def test_without_thresholds_the_rules_threshold_is_not_applied():
    d = sig("drop", 1, Threshold("threshold", "by_src", 5, 60))
    assert decide([d], "ips", set()).verdict == Verdict.DROP
