"""The SMTP parser and its MIME decoder (rules.applayer.smtp, smtp_mime).

What Suricata 7.0.10 decides on crafted sessions is pinned by the differential families
(tests/replay/app_smtp.py: detection, parser errors dropping the flow, file.data on
attachments, over 1,500 random attachments checked byte for byte while writing them);
here: the parser's own contract.  Suricata's SMTP parser is not split-invariant
everywhere, and neither is this one: command and reply lines and base64 attachments are
(every split gives the same transactions and the same file bytes), while in the data
section a packet's end also ends a "line" (quoted-printable escapes and line ends then
differ, and a plain attachment whose CRLF starts a packet stops the decoder, as
Suricata's FileAppendData refuses 0 bytes) -- pinned below.  Limits, and a fuzz that
never raises and stays bounded.
"""
from __future__ import annotations

import base64

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.applayer import registry, smtp_mime
from rules.applayer.base import DONE
from rules.applayer.smtp import LINE_LIMIT, Parser, Settings, _file_data, probe

BANNER = b"220 mx.example ESMTP\r\n"


def attachment(name: bytes, data: bytes, enc: str = "base64") -> bytes:
    if enc == "base64":
        body = base64.encodebytes(data).replace(b"\n", b"\r\n")
        cte = b"Content-Transfer-Encoding: base64\r\n"
    else:
        body, cte = data + b"\r\n", b""
    return b"--B\r\nContent-Disposition: attachment; filename=" + name + b"\r\n" + cte + b"\r\n" + body


def mail(*parts: bytes) -> bytes:
    return (b"Subject: s\r\nContent-Type: multipart/mixed; boundary=B\r\n\r\npreamble\r\n"
            + b"".join(parts) + b"--B--\r\n.\r\n")


MAIL = mail(attachment(b"a.bin", bytes(range(256)) * 3), b"--B\r\nContent-Type: text/plain\r\n\r\nbody text\r\n",
            attachment(b"b.bin", b"second attachment, short"))
CLIENT = [b"EHLO client.example\r\n", b"MAIL FROM:<a@example.com>\r\n", b"RCPT TO:<b@example.com>\r\n",
          b"DATA\r\n", MAIL, b"QUIT\r\n"]
SERVER = [BANNER, b"250 mx.example\r\n", b"250 ok\r\n", b"250 ok\r\n", b"354 go ahead\r\n", b"250 queued\r\n",
          b"221 bye\r\n"]


def run(client: list[bytes], server: list[bytes], settings_=None) -> tuple[Parser, list]:
    """Feed the server's first message, then each client message followed by its reply;
    file.data is read after each client message, as detection reads it inline."""
    p = Parser(settings_)
    windows = []

    def feed(data, to_server):
        p.feed(data, to_server)
        if to_server:
            for tx in p.txs:
                windows.extend(_file_data(tx) or ())
    feed(server[0], False)
    for c, s in zip(client, server[1:]):
        feed(c, True)
        feed(s, False)
    return p, windows


def state(p: Parser) -> tuple:
    return ([(tx.id, tx.is_done, tx.is_data, tx.progress) for tx in p.txs], p.failed, p.flags, p.cmds,
            p.events)


def test_a_mail_is_a_transaction_and_its_attachments_are_the_file_data():
    p, windows = run(CLIENT, SERVER)
    assert not p.failed
    assert [(tx.is_done, tx.is_data) for tx in p.txs] == [(True, True)]     # QUIT stays in the mail's
    assert p.txs[0].progress == [DONE, DONE]
    assert windows == [bytes(range(256)) * 3, b"second attachment, short"]
    assert p.events == []


def test_every_split_of_commands_replies_and_base64_attachments_gives_the_same():
    whole, whole_windows = run(CLIENT, SERVER)
    stream = b"".join(CLIENT)
    for cut in range(1, len(stream)):
        # the client's stream split at `cut`, the replies where they belong
        p = Parser()
        windows = []
        p.feed(BANNER, False)
        ends, n = [], 0
        for c in CLIENT:
            n += len(c)
            ends.append(n)
        pos = 0
        for i, end in enumerate(ends):
            for piece in ((stream[pos:cut], stream[cut:end]) if pos < cut < end else (stream[pos:end],)):
                p.feed(piece, True)
                for tx in p.txs:
                    windows.extend(_file_data(tx) or ())
            pos = end
            p.feed(SERVER[i + 1], False)
        assert b"".join(windows) == b"".join(whole_windows), cut
        if cut in (stream.index(b".\r\nQUIT") + 1, stream.index(b".\r\nQUIT") + 2):
            # after the final ".", or between its CR and LF: the packet's end (or the lone CR)
            # ends the line ".", and its CRLF (LF) is an empty command, which opens a transaction
            assert [tx.is_done for tx in p.txs] == [True, False], cut
            continue
        assert state(p) == state(whole), cut


def test_replies_split_anywhere_give_the_same():
    whole, _ = run(CLIENT, SERVER)
    for cut in range(1, len(SERVER[1])):
        server = [SERVER[0], SERVER[1][:cut]] + SERVER[2:]
        p = Parser()
        p.feed(server[0], False)
        p.feed(CLIENT[0], True)
        p.feed(SERVER[1][:cut], False)
        p.feed(SERVER[1][cut:], False)
        for c, s in zip(CLIENT[1:], SERVER[2:]):
            p.feed(c, True)
            p.feed(s, False)
        assert state(p) == state(whole), cut


def test_in_the_data_section_a_packet_end_ends_a_line_as_in_suricata():
    # quoted-printable: "x=4" | "1y" is no escape once split ("=" dropped); a plain attachment whose CRLF
    # starts the next packet gets a 0-byte append, which stops the decoder (Suricata too)
    qp = (b"--B\r\nContent-Disposition: attachment; filename=q\r\nContent-Transfer-Encoding: quoted-printable"
          b"\r\n\r\nx=41y\r\n")
    plain = attachment(b"p", b"plain", enc="none")
    for part, cut, expect in ((qp, qp.index(b"=41") + 2, [b"x41y\r\n", b"late"]),
                              (plain, plain.index(b"plain") + 5, [])):
        body = mail(part, attachment(b"late", b"late"))
        at = body.index(part) + cut
        p, windows = run(CLIENT[:4] + [body[:at], body[at:]], SERVER[:6] + [b"250 queued\r\n"])
        _, whole_windows = run(CLIENT[:4] + [body], SERVER[:6])
        assert not p.failed
        assert whole_windows[-1] == b"late"
        assert windows == expect                      # after the 0-byte append, "late" is never seen
        assert p.txs[0].is_done


def test_probe_is_the_clients_first_command():
    assert probe(b"EHLO x\r\n", True, 1, 25) is True
    assert probe(b"helo", True, 1, 2525) is True
    assert probe(b"QuIt\r\n", True, 1, 25) is True
    assert probe(b"EH", True, 1, 25) is None
    assert probe(b"MAIL FROM:<a>\r\n", True, 1, 25) is False
    assert probe(b" EHLO", True, 1, 25) is False
    assert probe(b"220 mx ESMTP\r\n", False, 25, 1) is False    # the banner never decides


@pytest.mark.parametrize("reply", [b"530 auth required\r\n", b"25\r\n", b"2\r\n", b"hello there\r\n"],
                         ids=["unknown-code", "short", "shorter", "no-code"])
def test_a_reply_without_a_known_code_gives_up(reply):
    p = Parser()
    p.feed(BANNER, False)
    p.feed(b"EHLO x\r\n", True)
    p.feed(reply, False)
    assert p.failed
    p.feed(b"MAIL FROM:<a@b>\r\n", True)               # nothing more is parsed
    assert len(p.txs) == 1


@pytest.mark.parametrize("cmd,data,fails", [
    (b"BDAT\r\n", b"", True),
    (b"BDAT   \r\n", b"", True),
    (b"BDATX 3\r\n", b"", True),
    (b"BDAT 5\r\n", b"hello", False),
    (b"BDAT 5 LAST\r\n", b"hel", False),
    (b"BDAT 3\r\n", b"hello\r\n", True),
    (b"BDAT x\r\n", b"", False),                       # not a number: a size of 0 (Suricata's check never fails)
    (b"BDAT x\r\n", b"a", True),
], ids=["no-size", "spaces", "no-space", "exact", "short", "past", "not-a-number", "past-zero"])
def test_bdat(cmd, data, fails):
    p = Parser()
    p.feed(BANNER, False)
    p.feed(b"EHLO x\r\n", True)
    p.feed(b"250 ok\r\n", False)
    p.feed(cmd, True)
    if data:
        p.feed(data, True)
    assert p.failed == fails


def test_pipelining_enters_the_data_mode_without_waiting():
    p = Parser()
    p.feed(BANNER, False)
    p.feed(b"EHLO x\r\n", True)
    p.feed(b"250-mx\r\n250-PIPELINING\r\n250 8BITMIME\r\n", False)
    p.feed(b"MAIL FROM:<a>\r\nRCPT TO:<b>\r\nDATA\r\n" + MAIL, True)
    assert p.txs[0].is_done and not p.failed


def test_data_refused_leaves_the_mail_lines_as_commands():
    p = Parser()
    p.feed(BANNER, False)
    for c, s in ((b"EHLO x\r\n", b"250 ok\r\n"), (b"MAIL FROM:<a>\r\n", b"250 ok\r\n"), (b"DATA\r\n", b"554 no\r\n")):
        p.feed(c, True)
        p.feed(s, False)
    p.feed(MAIL, True)
    assert not p.txs[0].is_done and not p.failed
    assert "smtp.data_command_rejected" in p.events


def test_rset_completes_the_transaction_and_quit_stays_in_it():
    p = Parser()
    p.feed(BANNER, False)
    for c, s in ((b"EHLO x\r\n", b"250 ok\r\n"), (b"MAIL FROM:<a>\r\n", b"250 ok\r\n"), (b"RSET\r\n", b"250 ok\r\n"),
                 (b"QUIT\r\n", b"221 bye\r\n")):
        p.feed(c, True)
        p.feed(s, False)
    assert [tx.is_done for tx in p.txs] == [True]


def test_starttls_hands_the_flow_over():
    p = Parser()
    p.feed(BANNER, False)
    p.feed(b"STARTTLS\r\n", True)
    p.feed(b"220 go ahead\r\n", False)
    assert p.upgrade == "tls" and p.txs[0].is_done
    p.feed(b"\x16\x03\x01\x00\x05hello", True)        # TLS from here: not parsed
    assert len(p.txs) == 1 and not p.failed


def test_a_long_command_line_is_cut_and_the_rest_of_that_data_skipped():
    p = Parser()
    p.feed(BANNER, False)
    p.feed(b"EHLO x\r\n", True)
    p.feed(b"250 ok\r\n", False)
    p.feed(b"NOOP " + b"a" * (LINE_LIMIT + 10), True)   # no LF yet: cut, then skipped up to the LF
    assert p.discard[1] and "smtp.truncated_line" in p.events
    p.feed(b"aaaa\r\nNOOP\r\n", True)                  # the LF ends the skipped line; NOOP is read
    assert not p.discard[1] and p.cmds[-1:] and len(p.held[1]) == 0


@pytest.mark.parametrize("piece", [1000, 4096, 7000], ids=lambda n: f"pieces-of-{n}")
def test_a_skipped_line_is_held_bounded_and_read_as_when_whole(piece):
    # Suricata holds the rest of a cut line until its LF; when it is LINE_LIMIT long or more
    # by then, its first LINE_LIMIT bytes are read as a cut line and the rest of that data
    # skipped (the RSET after it here); only those bytes and the length are kept
    rest = b"b" * 6000 + b"\r\nRSET\r\n"
    results = []
    for pieces in ([rest], [rest[i:i + piece] for i in range(0, len(rest), piece)]):
        p = Parser()
        p.feed(BANNER, False)
        p.feed(b"NOOP " + b"a" * 5000, True)
        for x in pieces:
            p.feed(x, True)
            assert len(p.held[1]) <= LINE_LIMIT
        results.append((p.cmds, p.events, p.discard))
    assert results[0] == results[1]
    assert results[0][0] == [5, 5] and results[0][1].count("smtp.truncated_line") == 2   # no RSET (6)


def test_transactions_per_flow_are_bounded():
    p = Parser(Settings(max_tx=3))
    p.feed(BANNER, False)
    for i in range(4):
        p.feed(b"MAIL FROM:<a>\r\n", True)
        p.feed(b"250 ok\r\n", False)
        p.feed(b"RCPT TO:<b>\r\n", True)
        p.feed(b"250 ok\r\n", False)
        p.feed(b"DATA\r\n", True)
        p.feed(b"354 go\r\n", False)
        p.feed(b"x\r\n.\r\n", True)
        p.feed(b"250 ok\r\n", False)
        assert not p.failed
    p.feed(b"MAIL FROM:<a>\r\n", True)                  # the 5th: past max_tx + 1
    assert p.failed


def test_a_large_attachment_is_inspected_in_windows():
    s = Settings(content_inspect_min_size=1000)
    data = bytes(i % 251 for i in range(5000))
    body = mail(attachment(b"big", data))
    pieces = [body[i:i + 700] for i in range(0, len(body), 700)]
    _, windows = run(CLIENT[:4] + pieces, SERVER[:5] + [b"250 ok\r\n"] * len(pieces), s)
    assert b"".join(windows) == data
    assert len(windows[0]) >= 1000 and len(windows) > 2
    assert max(len(w) for w in windows[1:]) < 1000       # after the first, each packet's new bytes


def test_a_window_is_what_came_since_detection_last_read_file_data():
    # as Suricata builds it when detection reads it (in IDS mode, on a later packet than the
    # one the data was parsed on): data parsed meanwhile is one window, not lost
    s = Settings(content_inspect_min_size=1000)
    data = bytes(i % 251 for i in range(5000))
    body = mail(attachment(b"big", data))
    p = Parser(s)
    for c, r in zip(CLIENT[:4], SERVER[1:5]):
        p.feed(c, True)
        p.feed(r, False)
    windows = []
    for i in range(0, len(body), 500):
        p.feed(body[i:i + 500], True)
        if i % 1500 == 0:
            windows.extend(_file_data(p.txs[0]) or ())
    windows.extend(_file_data(p.txs[0]) or ())
    assert b"".join(windows) == data
    assert len(windows) < len(body) // 500


def test_the_flow_end_inspects_an_unfinished_attachment():
    body = mail(attachment(b"eof", b"unfinished"))
    body = body[:body.index(b"--B--")]
    p, windows = run(CLIENT[:4] + [body], SERVER[:5] + [b"250 ok\r\n"])
    assert windows == []
    p.end(True)
    assert _file_data(p.txs[0]) == [b"unfinished"]


@pytest.mark.parametrize("rule,proto", [
    ('alert smtp any any -> any any (msg:"m"; file.data; content:"x"; sid:1;)', "smtp"),
    ('alert smtp any any -> any any (msg:"m"; flow:to_server; file_data; content:"x"; sid:1;)', "smtp"),
    ('alert http any any -> any any (msg:"m"; file.data; content:"x"; sid:1;)', "http"),
    ('alert tcp any any -> any any (msg:"m"; file.data; content:"x"; sid:1;)', "http"),
    ('alert smtp any any -> any any (msg:"m"; flow:to_client; file.data; content:"x"; sid:1;)', None),
    ('alert ftp any any -> any any (msg:"m"; file.data; content:"x"; sid:1;)', None),
    ('alert smtp any any -> any any (msg:"m"; http.uri; content:"x"; sid:1;)', None),
], ids=["smtp", "smtp-alias", "http", "tcp-is-http", "smtp-to-client", "ftp", "smtp-http-buffer"])
def test_file_data_is_the_rule_protocols_own(rule, proto):
    # Suricata registers file.data per protocol; for SMTP to the server only (flow:to_client
    # "mixes keywords with conflicting directions"), FTP has none (checked with suricata -T)
    from rules.errors import RuleError
    from rules.parser import parse_rule

    if proto is None:
        with pytest.raises(RuleError):
            parse_rule(rule)
        return
    app = parse_rule(rule).app
    assert app.proto == proto and app.bufs[0].get is registry.PROTOCOLS[proto].__dict__.get(
        "_file_data", app.bufs[0].get)
    assert (app.to_server, app.other is None) == ((True, True) if proto == "smtp" else (True, False))


# ---------------------------------------------------------------- the MIME decoder
def decode(lines: list[bytes]) -> list[tuple[bytes, bytes]]:
    out: list = []

    def sink(entity, chunk, begin, end):
        if entity.flags & smtp_mime.IS_ATTACHMENT:
            if begin:
                out.append([entity.filename, bytearray()])
            out[-1][1] += chunk
        return smtp_mime.OK
    dec = smtp_mime.MimeDecoder(Settings(), sink)
    for line in lines:
        dec.parse_line(line, b"\r\n")
    dec.complete()
    return [(n, bytes(d)) for n, d in out]


@pytest.mark.parametrize("header,name", [
    (b"Content-Disposition: attachment; filename=a.txt", b"a.txt"),
    (b'Content-Disposition: attachment; filename="b c.txt"', b"b c.txt"),
    (b"Content-Disposition: attachment; filename*0=par; filename*1=ts.txt", b"parts.txt"),
    (b"Content-Type: application/pdf; name=x.pdf", b"x.pdf"),
    (b'Content-Disposition: attachment; dummy="filename=no"; filename=yes', b"yes"),
    (b"Content-Disposition: attachment; FILENAME=upper", None),    # names are case-sensitive
    (b"Content-Disposition: attachment", None),
    (b"Content-Disposition: attachment; filename", None),          # no '=': nothing
    (b"Content-Type: text/plain", None),
], ids=["plain", "quoted", "rfc2231", "ct-name", "decoy", "case", "no-param", "no-equal", "text"])
def test_attachment_names(header, name):
    got = decode([b"Content-Type: multipart/mixed; boundary=B", b"", b"--B", header, b"", b"data", b"--B--"])
    assert got == ([] if name is None else [(name, b"data")])


@pytest.mark.parametrize("lines,data", [
    ([b"QUJD", b"REVG"], b"ABCDEF"),
    ([b"QU", b"JD"], b"ABC"),                         # a remainder waits for the next line
    ([b"Q U*J D"], b"ABC"),                           # characters outside the alphabet skipped
    ([b"QQ==QUJD"], b"AABC"),                         # padding does not stop decoding
    ([b"QQ"], b"A"),                                  # padded with '=' at the end
    ([b"Q"], b""),
], ids=["two-lines", "remainder", "junk", "inner-padding", "pad-at-end", "lone"])
def test_base64(lines, data):
    got = decode([b"Content-Disposition: attachment; filename=f", b"Content-Transfer-Encoding: base64", b""] + lines)
    assert got == [(b"f", data)]


@pytest.mark.parametrize("lines,data", [
    ([b"a=3Db"], b"a=b\r\n"),
    ([b"join=", b"ed"], b"joined\r\n"),
    ([b"low=3d"], b"low3d\r\n"),                      # lower-case hex is no escape: '=' dropped
    ([b"bad=Z"], b"badZ\r\n"),
    ([b"x", b"", b"y"], b"x\r\n\r\ny\r\n"),
], ids=["escape", "soft-break", "lower-hex", "short-escape", "blank-line"])
def test_quoted_printable(lines, data):
    got = decode([b"Content-Disposition: attachment; filename=f", b"Content-Transfer-Encoding: quoted-printable",
                  b""] + lines)
    assert got == [(b"f", data)]


def test_nested_and_encapsulated_attachments():
    got = decode([b"Content-Type: multipart/mixed; boundary=O", b"", b"--O", b"Content-Type: message/rfc822", b"",
                  b"Content-Type: multipart/mixed; boundary=I", b"", b"--I",
                  b"Content-Disposition: attachment; filename=in", b"", b"inner", b"--I--", b"--O",
                  b"Content-Disposition: attachment; filename=out", b"", b"outer", b"--O--"])
    assert got == [(b"in", b"inner"), (b"out", b"outer")]


def test_a_boundary_over_254_bytes_is_a_parse_error():
    dec = smtp_mime.MimeDecoder(Settings(), lambda *a: smtp_mime.OK)
    assert dec.parse_line(b"Content-Type: multipart/mixed; boundary=" + b"b" * 255, b"\r\n") == smtp_mime.OK
    assert dec.parse_line(b"", b"\r\n") == smtp_mime.ERR_PARSE
    assert dec.parse_line(b"more", b"\r\n") == smtp_mime.ERR_STATE


def test_header_values_are_bounded():
    dec = smtp_mime.MimeDecoder(Settings(header_value_depth=100), lambda *a: smtp_mime.OK)
    dec.parse_line(b"Content-Type: " + b"x" * 80, b"\r\n")
    for _ in range(1000):
        dec.parse_line(b"\t" + b"y" * 1000, b"\r\n")
    assert dec.hvlen == 100 and len(dec.hvalue) == 100
    assert dec.anomalies & smtp_mime.ANOM_LONG_HEADER_VALUE


# ---------------------------------------------------------------- never raises, bounded
_PIECES = st.sampled_from([b"EHLO x\r\n", b"MAIL FROM:<a>\r\n", b"RCPT TO:<b>\r\n", b"DATA\r\n", b".\r\n",
                           b"RSET\r\n", b"QUIT\r\n", b"BDAT 4\r\n", b"STARTTLS\r\n", b"--B\r\n", b"--B--\r\n",
                           b"Content-Type: multipart/mixed; boundary=B\r\n",
                           b"Content-Disposition: attachment; filename=f\r\n",
                           b"Content-Transfer-Encoding: base64\r\n", b"Content-Type: message/rfc822\r\n",
                           b"\r\n", b"QUJD\r\n", b"=41\r\n", b"\r", b"\n", b"-", b"x" * 5000])
_REPLIES = st.sampled_from([b"220 ok\r\n", b"250 ok\r\n", b"250-PIPELINING\r\n", b"354 go\r\n", b"221 bye\r\n",
                            b"554 no\r\n", b"530 x\r\n", b"\n"])


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(st.tuples(st.one_of(_PIECES, st.binary(max_size=300)), st.just(True)),
                          st.tuples(st.one_of(_REPLIES, st.binary(max_size=50)), st.just(False))), max_size=40))
def test_never_raises_and_stays_bounded(chunks):
    p = Parser(Settings(content_inspect_min_size=2000, max_pending=8000))
    for i, (data, to_server) in enumerate(chunks):
        p.feed(data, to_server)
        assert len(p.held[0]) <= LINE_LIMIT and len(p.held[1]) <= LINE_LIMIT
        for tx in p.txs:
            if i % 3:                         # detection does not always read file.data
                _file_data(tx)
            for f in tx.files:
                assert len(f.pending) <= 8000 and f.size - f.inspected == len(f.pending)
    p.end(True)
    p.end(False)
