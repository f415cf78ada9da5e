"""conf: `app-layer.protocols.smtp` and `.ftp` -- read like http, tls and dns: `enabled`
decides whether an engine built from the configuration detects and parses them, each key
the SMTP and FTP modules implement lands in their Settings and changes what is detected,
the others are judged (the DECISIONS rows in test_conf_app_layer.py), and bad values are
refused with file:line and the fix.

Names, value shapes and defaults as Suricata 7.0 (main-7.0.x: app-layer-smtp.c
SMTPConfigure, util-decode-mime.c MimeDecSetConfig, detect-file-data.c, app-layer-ftp.c
FTPParseMemcap, RegisterSMTPParsers / RegisterFTPParsers: patterns only, no detection-ports).
"""
from __future__ import annotations

import base64
import textwrap

import pytest
from conf_testing import app, load, one_refusal, protocols
from structlog.testing import capture_logs

import conf
from conf import ConfigError
from conf.build import engine_settings, load_rules
from conf.load import SMTP_NO_CONTENT_LIMIT
from rules.applayer import ENABLED
from rules.applayer import ftp as app_ftp
from rules.applayer import smtp as app_smtp


def smtp(body: str) -> str:
    return protocols("smtp:\n" + textwrap.indent(body, "  "))


def ftp(body: str) -> str:
    return protocols("ftp:\n" + textwrap.indent(body, "  "))


# ------------------------------------------------------------------ defaults
def test_defaults_are_suricatas():
    a = app("")
    assert a["smtp"] == app_smtp.Settings() and a["ftp"] == app_ftp.Settings() and a[ENABLED] == {}
    s = a["smtp"]
    assert (s.max_tx, s.decode_mime, s.decode_base64, s.decode_quoted_printable, s.header_value_depth,
            s.content_limit, s.content_inspect_min_size) == (256, True, True, True, 2000, 100000, 32768)
    assert (a["ftp"].max_tx, a["ftp"].max_line_len) == (1024, 4096)


def test_suricatas_stock_smtp_and_ftp_sections_give_the_defaults():
    stock = smtp("enabled: yes\nraw-extraction: no\nmime:\n  decode-mime: yes\n  decode-base64: yes\n"
                 "  decode-quoted-printable: yes\n  header-value-depth: 2000\n  extract-urls: yes\n"
                 "  body-md5: no\ninspected-tracker:\n  content-limit: 100000\n  content-inspect-min-size: 32768\n"
                 "  content-inspect-window: 4096\n") + "    ftp:\n      enabled: yes\n"
    with capture_logs() as logs:
        a = app(stock)
    assert a["smtp"] == app_smtp.Settings() and a["ftp"] == app_ftp.Settings() and a[ENABLED] == {}
    assert sorted((e["event"], e["key"]) for e in logs) == [
        ("config_key_ignored", "body-md5"), ("config_key_ignored", "extract-urls"),
        ("config_key_stock_value", "content-inspect-window")]


# ------------------------------------------------------------------ enabled
@pytest.mark.parametrize("proto", ["smtp", "ftp"])
@pytest.mark.parametrize("written,mode", [
    ("yes", "yes"), ("no", "no"), ("detection-only", "detection-only"), ("'Off'", "no"), ("true", "yes"),
    ("0", "no"),
], ids=repr)
def test_enabled_takes_suricatas_spellings(proto, written, mode):
    for body in (f"{proto}:\n  enabled: {written}\n", f"{proto}:\n  tcp:\n    enabled: {written}\n"):
        assert app(protocols(body))[ENABLED] == ({} if mode == "yes" else {(proto, 6): mode})


# ------------------------------------------------------------------ keys that land in Settings
LANDS = [
    ("smtp.max-tx", smtp("max-tx: 16\n"), lambda a: a["smtp"].max_tx, 16),
    ("smtp.max-tx-size", smtp("max-tx: 1kb\n"), lambda a: a["smtp"].max_tx, 1024),      # ParseSizeStringU64
    ("smtp.max-tx-0", smtp("max-tx: 0\n"), lambda a: a["smtp"].max_tx, 0),
    ("decode-mime", smtp("mime:\n  decode-mime: no\n"), lambda a: a["smtp"].decode_mime, False),
    ("decode-base64", smtp("mime:\n  decode-base64: off\n"), lambda a: a["smtp"].decode_base64, False),
    ("decode-quoted-printable", smtp("mime:\n  decode-quoted-printable: false\n"),
     lambda a: a["smtp"].decode_quoted_printable, False),
    ("header-value-depth", smtp("mime:\n  header-value-depth: 100\n"), lambda a: a["smtp"].header_value_depth,
     100),
    ("header-value-depth-0", smtp("mime:\n  header-value-depth: 0\n"),       # MimeDecSetConfig: the default
     lambda a: a["smtp"].header_value_depth, 2000),
    ("content-limit", smtp("inspected-tracker:\n  content-limit: 1kb\n"), lambda a: a["smtp"].content_limit, 1024),
    ("content-limit-0", smtp("inspected-tracker:\n  content-limit: 0\n"),    # no limit
     lambda a: a["smtp"].content_limit, SMTP_NO_CONTENT_LIMIT),
    ("content-inspect-min-size", smtp("inspected-tracker:\n  content-inspect-min-size: 16kb\n"),
     lambda a: a["smtp"].content_inspect_min_size, 16384),
    ("content-inspect-min-size-0", smtp("inspected-tracker:\n  content-inspect-min-size: 0\n"),
     lambda a: a["smtp"].content_inspect_min_size, 0),
    ("ftp.max-tx", ftp("max-tx: 8\n"), lambda a: a["ftp"].max_tx, 8),
    ("ftp.max-tx-0", ftp("max-tx: 0\n"), lambda a: a["ftp"].max_tx, 0),
    ("ftp.max-line-length", ftp("max-line-length: 1kb\n"), lambda a: a["ftp"].max_line_len, 1024),
]


@pytest.mark.parametrize("text,get,expected", [r[1:] for r in LANDS], ids=[r[0] for r in LANDS])
def test_key_lands_in_engine_settings_app(text, get, expected):
    assert get(app(text)) == expected


# ------------------------------------------------------------------ refused values
REFUSED = [
    ("smtp-enabled-maybe", smtp("enabled: maybe\n"), 4, "is not yes, no or detection-only"),
    ("ftp-enabled-twice", ftp("enabled: no\ntcp:\n  enabled: yes\n"), 6, "already decides for TCP"),
    ("smtp-has-no-detection-ports", smtp("detection-ports:\n  dp: 25\n"), 4, "unknown key"),
    ("ftp-has-no-udp", ftp("udp:\n  enabled: yes\n"), 4, "unknown key"),
    ("smtp-tcp-has-no-ports", smtp("tcp:\n  detection-ports:\n    dp: 25\n"), 5, "unknown key"),
    ("smtp-max-tx-not-a-size", smtp("max-tx: many\n"), 4, "is not a size"),
    ("smtp-mime-not-a-mapping", smtp("mime: yes\n"), 4, "must be a mapping"),
    ("decode-mime-maybe", smtp("mime:\n  decode-mime: maybe\n"), 5, "is not a boolean"),
    ("header-value-depth-size", smtp("mime:\n  header-value-depth: 2kb\n"), 5, "is not an integer"),
    ("header-value-depth-negative", smtp("mime:\n  header-value-depth: -1\n"), 5, "below the minimum 0"),
    ("header-value-depth-4gb", smtp("mime:\n  header-value-depth: 4294967296\n"), 5, "above the maximum"),
    ("unknown-mime-key", smtp("mime:\n  decode-base46: yes\n"), 5, "did you mean 'decode-base64'"),
    ("content-limit-4gb", smtp("inspected-tracker:\n  content-limit: 4gb\n"), 5, "above the maximum"),
    ("content-inspect-min-size-bad", smtp("inspected-tracker:\n  content-inspect-min-size: big\n"), 5,
     "is not a size"),
    ("unknown-tracker-key", smtp("inspected-tracker:\n  content-limt: 1kb\n"), 5, "did you mean 'content-limit'"),
    ("ftp-max-tx-4gb", ftp("max-tx: 4gb\n"), 4, "above the maximum"),
    ("ftp-max-line-length-0", ftp("max-line-length: 0\n"), 4, "below the minimum 1"),
    ("ftp-unknown-key", ftp("max-line-lenght: 1kb\n"), 4, "did you mean 'max-line-length'"),
]


@pytest.mark.parametrize("text,line,fragment", [r[1:] for r in REFUSED], ids=[r[0] for r in REFUSED])
def test_bad_values_are_refused_with_file_line_and_fix(text, line, fragment):
    p = one_refusal(text)
    assert p.line == line and fragment in p.message, str(p)


def test_all_refusals_of_both_sections_come_together():
    text = smtp("enabled: maybe\nraw-extraction: yes\ninspected-tracker:\n  content-inspect-window: 8kb\n") \
        + "    ftp:\n      memcap: 64mb\n      max-line-length: 0\n"
    with pytest.raises(ConfigError) as info:
        load(text)
    assert sorted((p.line, p.key) for p in info.value.problems) == [
        (4, "enabled"), (5, "raw-extraction"), (7, "content-inspect-window"), (9, "memcap"), (10, "max-line-length")]


# ------------------------------------------------------------------ an engine built from the configuration
def engine(text: str, *rules: str):
    from rules.engine import Engine
    from rules.parser import parse_rule

    return Engine([parse_rule(r) for r in rules], engine_settings(load(text), "ips"))


def session(e, steps: list[tuple[bool, bytes]], dport: int) -> list[int]:
    """A TCP session to `dport` through the engine, `steps` (to_server, data) in order: the sids
    alerted (sorted, once each)."""
    from scapy.layers.inet import IP, TCP
    from scapy.layers.l2 import Ether

    from rules.api import FrameMeta

    seq = {True: 999, False: 4999}
    ends = {True: (Ether() / IP(src="198.51.100.1", dst="203.0.113.1"), 40000, dport),
            False: (Ether() / IP(src="203.0.113.1", dst="198.51.100.1"), dport, 40000)}
    t = [0.0]

    def send(to_server: bool, flags: str, data: bytes = b""):
        t[0] += 0.01
        ip, sport, dport_ = ends[to_server]
        p = ip / TCP(sport=sport, dport=dport_, flags=flags, seq=seq[to_server], ack=seq[not to_server])
        r = e.inspect(bytes(p / data if data else p), FrameMeta(t[0], "eth0"))
        seq[to_server] += len(data) + ("S" in flags)
        return r

    send(True, "S")
    send(False, "SA")
    send(True, "A")
    sids = set()
    for to_server, data in steps:
        r = send(to_server, "PA", data)
        sids.update(ev.sid for ev in r.events if type(ev).__name__ == "Alert")
    return sorted(sids)


NEEDLE = b"x" * 50 + b"needle" + b"y" * 50


def mail(attachment: bytes = NEEDLE, disposition: bytes = b"attachment; filename=a.bin") -> bytes:
    body = base64.encodebytes(attachment).replace(b"\n", b"\r\n")
    return (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Disposition: "
            + disposition + b"\r\nContent-Transfer-Encoding: base64\r\n\r\n" + body + b"--B--\r\n.\r\n")


def smtp_steps(message: bytes) -> list[tuple[bool, bytes]]:
    return [(False, b"220 mx.example ESMTP\r\n"), (True, b"EHLO c.example\r\n"), (False, b"250 mx\r\n"),
            (True, b"MAIL FROM:<a@example.com>\r\n"), (False, b"250 ok\r\n"), (True, b"RCPT TO:<b@example.com>\r\n"),
            (False, b"250 ok\r\n"), (True, b"DATA\r\n"), (False, b"354 go\r\n"), (True, message),
            (False, b"250 queued\r\n"), (True, b"QUIT\r\n"), (False, b"221 bye\r\n")]


SMTP_PLAIN = 'alert smtp any any -> any any (msg:"ehlo"; content:"EHLO"; sid:1;)'
SMTP_FILE = 'alert smtp any any -> any any (msg:"att"; file.data; content:"needle"; sid:2;)'
SMTP_B64 = 'alert smtp any any -> any any (msg:"b64"; file.data; content:"eHh4eHh4"; sid:3;)'   # "xxxxxx"
FTP_PLAIN = 'alert ftp any any -> any any (msg:"user"; content:"USER"; sid:4;)'
FTP_STEPS = [(False, b"220 (vsFTPd 3.0.3)\r\n"), (True, b"USER anonymous\r\n"), (False, b"331 pw\r\n"),
             (True, b"PASS " + b"A" * 100 + b"\r\n"), (False, b"230 ok\r\n")]


@pytest.mark.parametrize("body,sids,parsed", [
    ("", [1, 2], True),
    ("enabled: yes\n", [1, 2], True),
    ("enabled: detection-only\n", [1], False),      # detected (plain rule), not parsed (no file.data)
    ("tcp:\n  enabled: detection-only\n", [1], False),
    ("enabled: no\n", [], None),                    # never detected: neither rule matches
    ("tcp:\n  enabled: no\n", [], None),
], ids=["default", "yes", "detection-only", "tcp-detection-only", "no", "tcp-no"])
def test_smtp_enabled_decides_detection_and_parsing(body, sids, parsed):
    e = engine(smtp(body) if body else "", SMTP_PLAIN, SMTP_FILE)
    assert session(e, smtp_steps(mail()), 25) == sids
    (flow,) = list(e.flows.all())
    stats = e.stats()
    if parsed is None:
        assert flow.app.proto == "failed" and "app.smtp.flows" not in stats and stats["app.detect_failed"] == 1
    else:
        assert flow.app.proto == "smtp" and stats["app.smtp.flows"] == 1
        assert (flow.app.parser is not None) is parsed


@pytest.mark.parametrize("body,sids,parsed", [
    ("", [4], True),
    ("enabled: detection-only\n", [4], False),
    ("enabled: no\n", [], None),
    ("tcp:\n  enabled: no\n", [], None),
], ids=["default", "detection-only", "no", "tcp-no"])
def test_ftp_enabled_decides_detection_and_parsing(body, sids, parsed):
    e = engine(ftp(body) if body else "", FTP_PLAIN)
    assert session(e, FTP_STEPS, 21) == sids
    (flow,) = list(e.flows.all())
    assert flow.app.proto == ("failed" if parsed is None else "ftp")
    if parsed is not None:
        assert (flow.app.parser is not None) is parsed


@pytest.mark.parametrize("body,message,sids", [
    ("", mail(), [1, 2]),
    ("mime:\n  decode-mime: no\n", mail(), [1]),                     # no attachment decoded: no file.data
    ("mime:\n  decode-base64: no\n", mail(), [1, 3]),                # the attachment as sent, base64
    ("mime:\n  header-value-depth: 20\n", mail(), [1]),              # "attachment; filename" -- no name
    ("mime:\n  header-value-depth: 0\n", mail(), [1, 2]),            # Suricata's default, 2000
    ("mime:\n  header-value-depth: 27\n", mail(), [1, 2]),           # the whole value, as kept
    ("mime:\n  header-value-depth: 26\n", mail(), [1]),
], ids=["default", "decode-mime-no", "decode-base64-no", "header-value-depth-20", "header-value-depth-0",
        "header-value-depth-27", "header-value-depth-26"])
def test_mime_settings_decide_what_file_data_holds(body, message, sids):
    assert session(engine(smtp(body) if body else "", SMTP_PLAIN, SMTP_FILE, SMTP_B64), smtp_steps(message), 25) \
        == sids


def test_decode_quoted_printable_reaches_the_decoder():
    qp = (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\n--B\r\nContent-Disposition: "
          b"attachment; filename=a.txt\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nne=65dle\r\n"
          b"--B--\r\n.\r\n")
    assert session(engine("", SMTP_FILE), smtp_steps(qp), 25) == [2]
    assert session(engine(smtp("mime:\n  decode-quoted-printable: no\n"), SMTP_FILE), smtp_steps(qp), 25) == []


# the attachment's first 12 base64 lines (684 bytes decoded) in one packet, the rest in the next
BIG = bytes(range(256)) * 4
BIG_MAIL = mail(BIG)
SPLIT = BIG_MAIL.index(b"\r\n", BIG_MAIL.index(b"base64\r\n\r\n") + 8 + 76 * 12)


def first_window(body: str) -> int:
    """The bytes of file.data detection gets once the first part of BIG arrived (0: deferred)."""
    p = app_smtp.Parser(app(smtp(body) if body else "")["smtp"])
    for data in (b"220 mx\r\n", b"EHLO c\r\n", b"250 mx\r\n", b"MAIL FROM:<a@b>\r\n", b"250 ok\r\n",
                 b"RCPT TO:<c@d>\r\n", b"250 ok\r\n", b"DATA\r\n", b"354 go\r\n"):
        p.feed(data, data[:1].isalpha())
    p.feed(BIG_MAIL[:SPLIT], True)
    assert not p.failed and p.txs[-1].files
    return sum(len(w) for w in app_smtp._file_data(p.txs[-1]) or ())


@pytest.mark.parametrize("body,inspected", [
    ("", 0),                                                              # under 32kb, incomplete: deferred
    ("inspected-tracker:\n  content-inspect-min-size: 512\n", 684),
    ("inspected-tracker:\n  content-inspect-min-size: 0\n", 684),
    ("inspected-tracker:\n  content-limit: 512\n", 684),
    ("inspected-tracker:\n  content-limit: 0\n  content-inspect-min-size: 1kb\n", 0),   # 0: no limit
    ("inspected-tracker:\n  content-limit: 1kb\n", 0),
], ids=["default", "min-size-512", "min-size-0", "limit-512", "limit-0", "limit-1kb"])
def test_inspected_tracker_decides_when_an_attachment_is_inspected(body, inspected):
    assert first_window(body) == inspected


def smtp_mails(settings, n: int) -> app_smtp.Parser:
    p = app_smtp.Parser(settings)
    p.feed(b"220 mx\r\n", False)
    p.feed(b"EHLO c\r\n", True)
    p.feed(b"250 mx\r\n", False)
    for _ in range(n):
        for c, s in ((b"MAIL FROM:<a@b>\r\n", b"250 ok\r\n"), (b"RCPT TO:<c@d>\r\n", b"250 ok\r\n"),
                     (b"DATA\r\n", b"354 go\r\n"), (b"Subject: s\r\n\r\nhi\r\n.\r\n", b"250 queued\r\n")):
            p.feed(c, True)
            p.feed(s, False)
    return p


def test_smtp_max_tx_bounds_the_mails_of_a_flow():
    assert not smtp_mails(app("")["smtp"], 3).failed
    assert not smtp_mails(app(smtp("max-tx: 2\n"))["smtp"], 2).failed
    assert smtp_mails(app(smtp("max-tx: 1\n"))["smtp"], 3).failed       # at most max-tx + 1 transactions


def test_ftp_max_tx_bounds_the_commands_waiting_for_a_reply():
    def run(settings) -> app_ftp.Parser:
        p = app_ftp.Parser(settings)
        for line in (b"USER a\r\n", b"PASS b\r\n", b"SYST\r\n"):      # pipelined, no reply yet
            p.feed(line, True)
        return p
    assert not run(app("")["ftp"]).failed
    assert not run(app(ftp("max-tx: 2\n"))["ftp"]).failed
    assert run(app(ftp("max-tx: 1\n"))["ftp"]).failed


def test_ftp_max_line_length_cuts_lines_in_an_engine():
    e = engine(ftp("max-line-length: 64\n"), FTP_PLAIN)
    assert session(e, FTP_STEPS, 21) == [4]
    assert e.stats().get("app.event.ftp.request_command_too_long") == 1
    e = engine("", FTP_PLAIN)
    assert session(e, FTP_STEPS, 21) == [4]
    assert "app.event.ftp.request_command_too_long" not in e.stats()


# ------------------------------------------------------------------ rules the settings keep from matching
def notes(tmp_path, yaml_body: str, rules: str) -> list[str]:
    (tmp_path / "a.rules").write_text(rules)
    (tmp_path / "c.yaml").write_text(yaml_body + "rule-files: [a.rules]\n")
    result = load_rules(conf.load_file(str(tmp_path / "c.yaml")))
    assert result.counts["loaded"] == rules.count("\n")              # they stay loaded
    return result.notes


RULES = f"{SMTP_PLAIN}\n{SMTP_FILE}\n{FTP_PLAIN}\n"


@pytest.mark.parametrize("body,expected", [
    ("", []),
    (smtp("enabled: no\n"), ["2 rules (the first at ", "need smtp, which is off", "c.yaml:4"]),
    (ftp("tcp:\n  enabled: no\n"), ["1 rule (", "a.rules:3", "needs ftp, which is off", "c.yaml:5"]),
    (smtp("enabled: detection-only\n"), ["1 rule (", "a.rules:2", "inspects smtp buffers", "c.yaml:4"]),
    (ftp("enabled: detection-only\n"), []),                          # no FTP buffers
    (smtp("mime:\n  decode-mime: no\n"), ["1 rule (", "a.rules:2", "SMTP file.data, which stays empty",
                                          "decode-mime: no, ", "c.yaml:5"]),
], ids=["none", "smtp-no", "ftp-tcp-no", "smtp-detection-only", "ftp-detection-only", "decode-mime-no"])
def test_rules_the_settings_keep_from_matching_are_noted(tmp_path, body, expected):
    found = notes(tmp_path, body, RULES)
    if not expected:
        assert found == []
        return
    (n,) = found
    assert all(fragment in n for fragment in expected), n
