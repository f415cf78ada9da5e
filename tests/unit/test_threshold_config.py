"""threshold.config: Suricata 7's syntax, refusals with file:line:col and the fix, and
how its entries combine with the rules' own threshold / detection_filter.

The semantics asserted here were observed with Suricata 7.0.10 on
tests/replay/threshold_config (make_threshold_config.py); the replay test compares
the whole EVE output with Suricata's."""
from __future__ import annotations

import pytest

from conf.build import load_rules
from conf.load import load_text
from rules import loader
from rules.errors import RuleError
from rules.parser import parse_rule
from rules.threshold_config import apply, parse

VARS = {"address-groups": {"HOME_NET": "[198.51.100.0/24]", "EXTERNAL_NET": "!$HOME_NET"}, "port-groups": {}}


def one(line: str):
    out = parse(line + "\n", "t.config", VARS)
    assert not out.errors, [str(e) for e in out.errors]
    (entry,) = out.entries
    return entry


def error(text: str) -> RuleError:
    out = parse(text, "t.config", VARS)
    assert not out.entries
    (e,) = out.errors
    return e


# ------------------------------------------------------------------ syntax
def test_threshold_line():
    e = one("threshold gen_id 1, sig_id 123, type limit, track by_src, count 1, seconds 60")
    assert (e.kind, e.gid, e.sid, e.line) == ("threshold", 1, 123, 1)
    t = e.threshold
    assert (t.type, t.track, t.count, t.seconds) == ("limit", "by_src", 1, 60)


def test_event_filter_is_a_threshold():
    e = one("event_filter gen_id 1, sig_id 9, type both, track by_both, count 3, seconds 5")
    assert e.kind == "threshold" and e.threshold.type == "both" and e.threshold.track == "by_both"


def test_rate_filter_line():
    t = one("rate_filter gen_id 1, sig_id 1000, track by_rule, count 100, seconds 60, new_action drop, "
            "timeout 10").threshold
    assert (t.type, t.track, t.count, t.seconds, t.new_action, t.timeout) == ("rate", "by_rule", 100, 60, "drop", 10)


@pytest.mark.parametrize("ip,inside,outside", [
    pytest.param("217.110.97.128/25", (4, 0xD96E6181), (4, 0xD96E6101), id="cidr"),
    pytest.param("[203.0.113.1, 2001:db8::/32]", (6, 0x20010DB8 << 96 | 5), (4, 0xCB007102), id="list"),
    pytest.param("$HOME_NET", (4, 0xC6336405), (4, 0xCB007101), id="var"),
])
def test_suppress_with_ip(ip, inside, outside):
    e = one(f"suppress gen_id 1, sig_id 2002087, track by_src, ip {ip}")
    assert e.suppress.track == "by_src"
    assert e.suppress.addrs.contains(*inside) and not e.suppress.addrs.contains(*outside)


def test_suppress_without_track():
    e = one("suppress gen_id 1, sig_id 2002087")
    assert e.kind == "suppress" and e.suppress is None and e.threshold is None


def test_comments_blank_lines_and_continuation():
    text = ("# a comment\n\n   # indented comment\n"
            "rate_filter gen_id 1, sig_id 7, track by_src, count 2, seconds 10, \\  \n"
            "    new_action reject, timeout 5\n"
            "suppress gen_id 1, sig_id 8\n")
    out = parse(text, "t.config")
    assert not out.errors
    assert [(e.kind, e.line) for e in out.entries] == [("rate_filter", 4), ("suppress", 6)]
    assert out.entries[0].threshold.new_action == "reject"


@pytest.mark.parametrize("text,line,col,words", [
    pytest.param("thresold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 1", 1, 1,
                 ("unknown threshold.config entry 'thresold'",), id="misspelt-kind"),
    pytest.param("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1", 1, 64,
                 ("expected ','", "write it as: threshold gen_id"), id="missing-seconds"),
    pytest.param("threshold gen_id 1, sig_id 1 type limit, track by_src, count 1, seconds 1", 1, 30,
                 ("expected ',' after sig_id 1, found 'type limit'",), id="missing-comma"),
    pytest.param("threshold gen_id 1, sig_id 1, track by_src, type limit, count 1, seconds 1", 1, 31,
                 ("expected 'type' here, found 'track'",), id="wrong-order"),
    pytest.param("threshold gen_id 1, sig_id 1, type Limit, track by_src, count 1, seconds 1", 1, 36,
                 ("type must be one of limit, threshold, both, not 'Limit'",), id="bad-type"),
    pytest.param("threshold gen_id 1, sig_id 1, type limit, track by_either, count 1, seconds 1", 1, 49,
                 ("track must be one of by_src, by_dst, by_rule, by_both",), id="suppress-track-on-threshold"),
    pytest.param("threshold gen_id 1, sig_id 1, type limit, track by_src, count 0, seconds 1", 1, 63,
                 ("'count' must be at least 1",), id="count-zero"),
    pytest.param("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 1 # noisy", 1, 76,
                 ("a comment must be on a line of its own",), id="trailing-comment"),
    pytest.param("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 99999999999", 1, 74,
                 ("too large",), id="beyond-u32"),
    pytest.param("threshold gen_id 0, sig_id 5, type limit, track by_src, count 1, seconds 1", 1, 1,
                 ("sig_id 5 with gen_id 0",), id="sid-without-gid"),
    pytest.param("rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 1, new_action block, timeout 1",
                 1, 78, ("new_action must be one of alert, drop, pass, reject, log, sdrop, not 'block'",),
                 id="bad-new-action"),
    pytest.param("rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 1, new_action drop", 1, 82,
                 ("expected ','", "timeout"), id="rate-missing-timeout"),
    pytest.param("suppress gen_id 1, sig_id 1, track by_src", 1, 42, ("expected ','",), id="suppress-no-ip"),
    pytest.param("suppress gen_id 1, sig_id 1, track by_rule, ip 203.0.113.1", 1, 36,
                 ("track must be one of by_src, by_dst, by_either",), id="suppress-bad-track"),
    pytest.param("suppress gen_id 1, sig_id 1, track by_src, ip !203.0.113.1", 1, 47,
                 ("'!' is not allowed in a suppress ip",), id="suppress-negation"),
    pytest.param("suppress gen_id 1, sig_id 1, track by_src, ip 203.0.113.300", 1, 47,
                 ("suppress ip '203.0.113.300'",), id="suppress-bad-address"),
    pytest.param("suppress gen_id 1, sig_id 1, track by_src, ip $NOPE", 1, 47,
                 ("suppress ip '$NOPE'",), id="suppress-unknown-var"),
    pytest.param("# fine\nrate_filter gen_id 1, sig_id 1, track by_src, count 1, \\\n  seconds x, new_action drop, "
                 "timeout 1", 3, 11, ("'seconds' must be a whole number",), id="error-on-continuation-line"),
])
def test_malformed_line_refused_with_place_and_fix(text, line, col, words):
    e = error(text)
    assert (e.file, e.line, e.column) == ("t.config", line, col), str(e)
    for w in words:
        assert w in str(e), str(e)
    assert "write it as:" in str(e) or "unknown threshold.config entry" in str(e)


def test_one_bad_line_does_not_hide_the_others():
    out = parse("suppress gen_id 1, sig_id 1\nsuppress gen_id 1 sig_id 2\nsuppress gen_id 1, sig_id 3\n", "t")
    assert [e.sid for e in out.entries] == [1, 3]
    assert [e.line for e in out.errors] == [2]


# ------------------------------------------------------------------ applying to rules
def rules(*texts):
    return [parse_rule(t) for t in texts]


def applied(text: str, *rule_texts):
    rs = rules(*rule_texts)
    out = parse(text, "t.config", VARS)
    assert not out.errors
    return rs, apply(out.entries, rs)


R1 = 'alert udp any any -> any 1 (msg:"plain"; sid:1;)'
R2 = 'alert udp any any -> any 2 (msg:"own limit"; threshold:type limit, track by_src, count 3, seconds 60; sid:2;)'
R3 = 'alert udp any any -> any 3 (msg:"own df"; detection_filter:track by_src, count 2, seconds 60; sid:3;)'
R5 = 'alert udp any any -> any 5 (msg:"gid 5"; gid:5; sid:5;)'


def test_sid_threshold_replaces_the_rules_threshold_and_detection_filter():
    rs, warnings = applied("threshold gen_id 1, sig_id 2, type both, track by_dst, count 2, seconds 9\n"
                           "threshold gen_id 1, sig_id 3, type limit, track by_src, count 1, seconds 60\n", R2, R3)
    assert not warnings
    assert (rs[0].threshold.type, rs[0].threshold.track) == ("both", "by_dst")
    assert rs[1].threshold.type == "limit" and rs[1].detection_filter is None


def test_a_later_sid_line_replaces_an_earlier_one():
    rs, _ = applied("threshold gen_id 1, sig_id 1, type limit, track by_src, count 1, seconds 60\n"
                    "threshold gen_id 1, sig_id 1, type threshold, track by_src, count 5, seconds 60\n", R1)
    assert (rs[0].threshold.type, rs[0].threshold.count) == ("threshold", 5)


def test_sid_zero_fills_only_rules_without_threshold():
    rs, warnings = applied("threshold gen_id 0, sig_id 0, type limit, track by_rule, count 1, seconds 60\n",
                           R1, R2, R3, R5)
    assert not warnings
    assert rs[0].threshold.track == "by_rule" and rs[3].threshold.track == "by_rule"
    assert rs[1].threshold.count == 3 and rs[2].threshold is None and rs[2].detection_filter is not None


def test_sid_zero_with_gid_only_that_gid():
    rs, _ = applied("threshold gen_id 5, sig_id 0, type limit, track by_rule, count 1, seconds 60\n", R1, R5)
    assert rs[0].threshold is None and rs[1].threshold is not None


def test_first_sid_zero_line_wins():
    rs, _ = applied("threshold gen_id 0, sig_id 0, type limit, track by_rule, count 1, seconds 60\n"
                    "threshold gen_id 0, sig_id 0, type limit, track by_src, count 7, seconds 60\n", R1)
    assert rs[0].threshold.count == 1


def test_rate_filter_only_on_a_rule_without_threshold():
    text = ("rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 60, new_action drop, timeout 5\n"
            "rate_filter gen_id 1, sig_id 2, track by_src, count 1, seconds 60, new_action drop, timeout 5\n")
    rs, warnings = applied(text, R1, R2)
    assert rs[0].threshold.type == "rate" and rs[1].threshold.type == "limit"
    (w,) = warnings
    assert (w.line, "sid 2 is ignored" in w.message, "threshold" in w.message) == (2, True, True)


def test_suppress_without_track_is_noalert_with_track_adds_a_suppression():
    rs, warnings = applied("suppress gen_id 1, sig_id 1\nsuppress gen_id 1, sig_id 2, track by_dst, ip $HOME_NET\n"
                           "suppress gen_id 1, sig_id 2, track by_either, ip 203.0.113.7\n", R1, R2)
    assert not warnings
    assert rs[0].noalert and not rs[0].suppress
    assert not rs[1].noalert and [s.track for s in rs[1].suppress] == ["by_dst", "by_either"]
    assert rs[1].threshold.count == 3                       # suppress leaves the threshold alone


def test_suppress_every_rule_warns():
    rs, warnings = applied("suppress gen_id 0, sig_id 0\n", R1, R5)
    assert all(r.noalert for r in rs)
    assert len(warnings) == 1 and "no rule will alert" in warnings[0].message


def test_unknown_sid_and_no_effect_actions_warn():
    rs, warnings = applied("threshold gen_id 1, sig_id 99, type limit, track by_src, count 1, seconds 1\n"
                           "rate_filter gen_id 1, sig_id 1, track by_src, count 1, seconds 1, new_action sdrop, "
                           "timeout 1\n", R1)
    assert [w.line for w in warnings] == [1, 2]
    assert "gid 1 sid 99" in warnings[0].message and "sdrop has no effect" in warnings[1].message
    assert rs[0].threshold.new_action == "sdrop"


# ------------------------------------------------------------------ the loader and the configuration
def write(tmp_path, name, text):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_loader_applies_the_file_and_reports_bad_lines(tmp_path):
    r = write(tmp_path, "r.rules", R1 + "\n" + R2 + "\n")
    t = write(tmp_path, "threshold.config", "suppress gen_id 1, sig_id 1\nthreshold gen_id 1, sig_id 2\n")
    res = loader.load([r], vars=VARS, threshold_file=t)
    assert res.rules[0].noalert and res.rules[1].threshold.count == 3
    (e,) = res.errors
    assert (e.file, e.line) == (str(t), 2) and not res.ok
    assert res.counts["failed"] == 0                        # no rule failed: the file did
    assert f"threshold file {t}: 1 entries read" in loader.format_report(res)
    with pytest.raises(RuleError):
        loader.load([r], vars=VARS, threshold_file=t, strict=True)


def test_loader_unreadable_file(tmp_path):
    r = write(tmp_path, "r.rules", R1 + "\n")
    res = loader.load([r], vars=VARS, threshold_file=tmp_path / "missing.config")
    (e,) = res.errors
    assert "cannot read threshold file" in e.message and "threshold-file" in e.message
    assert res.rules[0].threshold is None


def test_without_threshold_file_nothing_changes(tmp_path):
    r = write(tmp_path, "r.rules", R1 + "\n")
    res = loader.load([r], vars=VARS)
    assert res.ok and res.threshold_file == "" and not res.rules[0].noalert


def test_config_key_threshold_file_relative_to_the_yaml(tmp_path):
    write(tmp_path, "r.rules", R1 + "\n")
    write(tmp_path, "threshold.config", "suppress gen_id 1, sig_id 1\n")
    cfg = load_text(f"default-rule-path: {tmp_path}\nrule-files: [r.rules]\nthreshold-file: threshold.config\n",
                    str(tmp_path / "x.yaml"), str(tmp_path))
    assert cfg.threshold_file == str(tmp_path / "threshold.config")
    assert load_rules(cfg).rules[0].noalert
    assert load_text("rule-files: []\n").threshold_file is None
