"""The FTP control-connection parser (rules.applayer.ftp).

What Suricata 7.0.10 decides on crafted sessions is pinned by the differential family
(tests/replay/app_ftp.py: detection, the flow dropped on RETR/STOR without a data port,
ET rules; and random sessions checked while writing it); here: the parser's contract --
every split of the stream gives the same transactions and verdicts, the argument parsers
as Suricata's nom parsers, limits, and a fuzz that never raises and stays bounded.
"""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from rules.applayer.base import DONE
from rules.applayer.ftp import (
    UNKNOWN,
    Parser,
    Settings,
    active_eprt,
    active_port,
    command_of,
    epsv_port,
    pasv_port,
    probe,
)

SESSION = [
    (False, b"220 (vsFTPd 3.0.3)\r\n"),
    (True, b"USER anonymous\r\n"), (False, b"331 Please specify the password.\r\n"),
    (True, b"PASS secret\r\n"), (False, b"230 Login successful.\r\n"),
    (True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (203,0,113,2,195,80).\r\n"),
    (True, b"RETR a.txt\r\n"), (False, b"150 Opening BINARY mode.\r\n226 Transfer complete.\r\n"),
    (True, b"PORT 198,51,100,2,4,2\r\n"), (False, b"200 PORT command successful.\r\n"),
    (True, b"STOR c.txt\r\n"), (False, b"150 ok\r\n226 ok\r\n"),
    (True, b"hello\r\nNOOP\r\n"), (False, b"500 what\r\n200 ok\r\n"),
    (True, b"QUIT\r\n"), (False, b"221 Goodbye.\r\n"),
]


def run(steps, settings_=None) -> Parser:
    p = Parser(settings_)
    for to_server, data in steps:
        p.feed(data, to_server)
    return p


def state(p: Parser) -> tuple:
    return ([(tx.id, tx.command, tx.request, tx.replies, tx.is_done, tx.progress) for tx in p.txs],
            p.failed, p.dyn_port, p.events)


def test_a_session():
    p = run(SESSION)
    assert not p.failed
    assert [(tx.command, tx.replies) for tx in p.txs] == [
        (UNKNOWN, [b"220 (vsFTPd 3.0.3)"]), (b"USER", [b"331 Please specify the password."]),
        (b"PASS", [b"230 Login successful."]), (b"PASV", [b"227 Entering Passive Mode (203,0,113,2,195,80)."]),
        (b"RETR", [b"150 Opening BINARY mode.", b"226 Transfer complete."]),
        (b"PORT", [b"200 PORT command successful."]), (b"STOR", [b"150 ok", b"226 ok"]),
        (b"NOOP", [b"500 what", b"200 ok"]), (b"QUIT", [b"221 Goodbye."])]
    assert all(tx.progress == [DONE, DONE] for tx in p.txs)


def test_every_split_of_either_direction_gives_the_same():
    whole = run(SESSION)
    for i, (to_server, data) in enumerate(SESSION):
        for cut in range(1, len(data)):
            steps = SESSION[:i] + [(to_server, data[:cut]), (to_server, data[cut:])] + SESSION[i + 1:]
            assert state(run(steps)) == state(whole), (i, cut)


def test_a_preliminary_reply_keeps_the_transaction_open():
    p = run(SESSION[:7] + [(True, b"RETR a.txt\r\n"), (False, b"150 Opening.\r\n")])
    assert not p.txs[-1].is_done and p.txs[-1].progress == [0, 0]


@pytest.mark.parametrize("steps", [
    [(True, b"RETR a.txt\r\n")],                                          # no data port
    [(True, b"STOR a.txt\r\n")],
    [(True, b"port 1,2,3,4,5,6\r\n"), (False, b"200 ok\r\n"), (True, b"RETR a\r\n")],   # not "PORT"
    [(True, b"PASV\r\n"), (False, b"227 Entering Passive Mode (1,2,3,4,5,6)\r\n"), (True, b"STOR\r\n")],
    [(True, b"PASV\r\n"), (False, b"227 no port here\r\n"), (True, b"RETR a\r\n")],
    [(True, b"PORT 1,2,3,4,5,6\r\n"), (False, b"200 ok\r\n"), (True, b"RETR a\r\n"), (True, b"RETR b\r\n")],
], ids=["retr", "stor", "lower-port", "short-stor", "bad-pasv", "port-used-once"])
def test_a_transfer_without_a_data_port_gives_up(steps):
    p = run([(False, b"220 (vsFTPd)\r\n")] + steps)
    assert p.failed
    n = len(p.txs)
    p.feed(b"NOOP\r\n", True)                          # nothing more is parsed
    assert len(p.txs) == n


@pytest.mark.parametrize("line,cmd", [
    (b"USER x", b"USER"), (b"user x", b"USER"), (b"XPWD", b"PWD"), (b"REPORT 1", b"PORT"),
    (b"auth tls", b"AUTH TLS"), (b"AUTH SSL", UNKNOWN), (b"hello", UNKNOWN), (b"MAIL PASS", b"MAIL"),
    (b"PASS mail", b"PASS"), (b"CHMODE", b"CHMOD"), (b"", UNKNOWN),
], ids=lambda v: v.decode() if isinstance(v, bytes) else v)
def test_the_command_is_the_first_match_ending_first(line, cmd):
    assert command_of(line) == cmd


def test_data_port_parsers():
    assert active_port(b"PORT 192,168,0,1,4,1") == 1025
    assert active_port(b"PORT  1 ,2,3,4,255,255 trailing") == 65535
    assert active_port(b"PORT 1,2,3,4,256,1") == 0
    assert active_port(b"port 1,2,3,4,5,6") == 0
    assert active_eprt(b"EPRT |2|2a01:e34::1|41813|") == 41813
    assert active_eprt(b"EPRT |1|1.2.3.4|x|") == 0
    assert pasv_port(b"227 Entering Passive Mode (212,27,32,66,221,243).") == 56819
    assert pasv_port(b"227 Entering Passive Mode (212,27,32,66, 221 , 243)") == 56819
    assert pasv_port(b"227 Entering Passive Mode (212,27,32,66,221,243") == 0
    assert epsv_port(b"229 Entering Extended Passive Mode (|||48758|).") == 48758
    assert epsv_port(b"229 Entering Extended Passive Mode (|||48758|") == 0


def test_probe():
    assert probe(b"USER x\r\n", True, 1, 21) is True
    assert probe(b"feat\r\n", True, 1, 2121) is True
    assert probe(b"US", True, 1, 21) is None
    assert probe(b"LIST\r\n", True, 1, 21) is False
    assert probe(b"220 (vsFTPd 3.0.3)\r\n", False, 21, 1) is True
    assert probe(b"220 ProFTPD\r\n", False, 21, 1) is False
    assert probe(b"220", False, 21, 1) is None


def test_auth_tls_hands_the_flow_over():
    p = run([(False, b"220 (vsFTPd)\r\n"), (True, b"AUTH TLS\r\n"), (False, b"234 Proceed.\r\n")])
    assert p.upgrade == "tls"
    p.feed(b"\x16\x03\x01\x00\x05hello", True)
    assert len(p.txs) == 2 and not p.failed


def test_a_long_line_is_cut_and_the_rest_of_its_data_skipped():
    s = Settings(max_line_len=100)
    p = run([(True, b"SITE " + b"z" * 200 + b"\r\nNOOP\r\n")], s)    # NOOP in the same data: skipped
    assert [(tx.command, tx.request_truncated) for tx in p.txs] == [(b"SITE", True)]
    assert p.events == ["ftp.request_command_too_long"]
    p = run([(True, b"SITE " + b"z" * 200), (True, b"z" * 500), (True, b"\r\nNOOP\r\n"), (True, b"PWD\r\n")], s)
    # cut without LF: the rest up to the LF, and that data, is skipped (not held)
    assert [tx.command for tx in p.txs] == [b"SITE", b"PWD"]
    assert p.held == [b"", b""]


def test_open_transactions_are_bounded():
    # Suricata: a new transaction when tx_cnt - the oldest's id > max-tx fails, the parser gives up
    p = run([(True, b"NOOP\r\n" * 11)], Settings(max_tx=10))
    assert not p.failed and len(p.txs) == 11
    p.feed(b"NOOP\r\n", True)
    assert p.failed


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.one_of(
    st.sampled_from([b"USER a\r\n", b"PASV\r\n", b"RETR f\r\n", b"PORT 1,2,3,4,5,6\r\n", b"EPSV\r\n",
                     b"227 (1,2,3,4,5,6)\r\n", b"229 (|||5|)\r\n", b"150 x\r\n", b"AUTH TLS\r\n", b"234 x\r\n",
                     b"\r\n", b"\n", b"z" * 5000]),
    st.binary(max_size=300))), max_size=40))
def test_never_raises_and_stays_bounded(steps):
    p = Parser(Settings(max_tx=50))
    for to_server, data in steps:
        p.feed(data, to_server)
        assert len(p.held[0]) < 4096 and len(p.held[1]) < 4096
        assert len(p.txs) <= 52
    p.end(True)
    p.end(False)
