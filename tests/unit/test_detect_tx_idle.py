"""Transaction detection skips a packet when nothing a waiting rule needs can have changed
since its last run on the flow direction (rules.detect_tx.TxDetector.run, Parser.gen): an
HTTP body growing below its minimal inspect size.  Checked in lockstep against an engine
that runs transaction detection on every packet: every result, EVE event and alert count
the same, with rules that wait on the packet itself (a payload part, a flowbit set later by a
packet rule, a payload part), an interim 100 response, a body that crosses its minimal
inspect size, and a rule reload in the middle."""
from __future__ import annotations

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.applayer.http import Settings as HttpSettings
from rules.engine import Engine
from rules.settings import EngineSettings
from tests.unit.test_engine_lean_lane import drive, parse, session

RULES = """
alert http any any -> any any (msg:"admin uri"; flow:to_server; http.uri; content:"/admin"; sid:21;)
alert http any any -> any any (msg:"evil server"; http.server; content:"evil"; sid:22;)
drop http any any -> any any (msg:"drop a body"; file.data; content:"DROPBODY"; sid:23;)
alert http any any -> any any (msg:"payload and a transaction"; flow:to_client; content:"qqq"; http.stat_code; content:"200"; sid:26;)
alert http any any -> any any (msg:"a marked packet of a 200"; flow:to_client; pkt_data; content:"BIG"; http.stat_code; content:"200"; sid:40;)
alert tcp any any -> any any (msg:"set the bit"; content:"SETBIT"; flowbits:set,b; flowbits:noalert; sid:41;)
alert http any any -> any any (msg:"bit and a 200"; flowbits:isset,b; http.stat_code; content:"200"; sid:42;)
alert http any any -> any any (msg:"interim"; http.stat_code; content:"100"; sid:44;)
alert http any any -> any any (msg:"a mark in a body"; file.data; content:"MARK"; sid:45;)
alert http any any -> any any (msg:"a mark in a body, once it is complete"; file.data; content:"MARK"; isdataat:!1,relative; sid:46;)
"""
# the rules above that wait on the transaction alone (none on the packet)
TX_ONLY = "\n".join(line for line in RULES.splitlines() if any(f"sid:{n};" in line for n in (21, 22, 23, 44, 45, 46)))
HTTP = HttpSettings(response_body_minimal_inspect_size=2000, request_body_minimal_inspect_size=2000)

pieces = st.lists(st.sampled_from([
    b"GET /admin HTTP/1.1\r\nHost: a\r\n\r\n", b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n",
    b"POST /up HTTP/1.1\r\nContent-Length: 3000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nServer: evil\r\nContent-Length: 3000\r\n\r\n",
    b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", b"HTTP/1.1 100 Continue\r\n\r\n",
    b"y" * 600, b"y" * 1200, b"BIG", b"SETBIT", b"MARK", b"DROPBODY", b"qqq", b"z" * 97]), min_size=1, max_size=8)
steps = st.lists(st.tuples(st.sampled_from(["c", "s", "s", "ack", "retx", "fin"]), pieces), min_size=1, max_size=10)


def always_running(engine: Engine) -> Engine:
    """The reference: transaction detection runs on every packet it is asked to (no
    direction is ever idle, for the run or for the engine's lane asking before it)."""
    engine.detector.tx.idle = lambda parser, d, flow: False
    return engine


def counting(engine: Engine) -> Engine:
    """Count the transactions the engine's transaction detection walked (its _candidates calls)."""
    txd = engine.detector.tx
    cands = txd._candidates
    engine.walked = 0

    def counted(*args):
        engine.walked += 1
        return cands(*args)

    txd._candidates = counted
    return engine


def walks(engine: Engine) -> int:
    return engine.walked


def observable(engine: Engine) -> dict:
    s = engine.stats()
    s.pop("detect.tx_evaluated")               # (the point: fewer rules tried)
    return s


def lockstep(frames, rules=RULES, reload_at: int | None = None, http: HttpSettings = HTTP):
    cfg = EngineSettings(mode="ips", app={"http": http})
    skipping = counting(Engine(parse(rules), cfg))
    every = counting(always_running(Engine(parse(rules), cfg)))

    def reload(n: int) -> None:
        if n == reload_at:
            for e in (skipping, every):
                e.adopt_rules(Engine(parse(rules), cfg))
            always_running(every)

    drive(skipping, every, [(1.7e9 + n * 0.001, f, ("eth0",)) for n, f in enumerate(frames, 1)],
          skipping.front(), every.front(), between=reload, observe=(observable,))
    return skipping, every


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, reload_at=st.one_of(st.none(), st.integers(4, 30)))
def test_random_http_sessions_alert_the_same_with_the_skip(steps, reload_at):
    lockstep(session(steps, 40000) + session(steps, 40001), reload_at=reload_at)


def test_a_body_below_its_minimal_inspect_size_is_skipped_and_its_rules_still_fire():
    resp = [b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", b"y" * 600, b"MARK" + b"y" * 596, b"y" * 600,
            b"y" * 600, b"y" * 596 + b"MARK"]
    frames = session([("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", resp), ("ack", [b""])], 40000)
    skipping, every = lockstep(frames, TX_ONLY)
    assert skipping.hits.get((1, 45)) == 1 and skipping.hits.get((1, 46)) == 1
    # the three segments that leave the body below 2,000 bytes (600, 1,200, 1,800) are not
    # run; the one that brings it to 2,400 and the last one are
    assert walks(skipping) == walks(every) - 3, (walks(skipping), walks(every))
    # with rules waiting on the packet (a flowbit, payload parts) every packet runs
    busy, every = lockstep(frames)
    assert walks(busy) == walks(every)


@pytest.mark.parametrize("only", [False, True], ids=["all rules", "a payload part and the bit alone"])
def test_a_rule_waiting_on_the_packet_is_tried_on_every_packet(only):
    """A payload part (pkt_data) and a flowbit a packet rule sets later: the packet that
    satisfies them runs, with the other rules waiting on the packet or with only these (the
    payload part keeps the direction busy; the bit's wait ends when the bits change)."""
    resp = [b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", b"BIG" + b"y" * 1197, b"SETBIT" + b"y" * 594, b"y" * 600,
            b"y" * 600]         # (the big packet and the bit both come while the body is below 2,000)
    rules = BIT_RULES + "\n".join(ln for ln in RULES.splitlines() if "sid:40;" in ln) if only else RULES
    skipping, _ = lockstep(session([("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", resp)], 40000), rules)
    assert skipping.hits.get((1, 40)) == 1 and skipping.hits.get((1, 42)) == 1


def test_an_interim_response_answers_as_without_the_skip():
    """A 100 Continue, then the real response, for one request: the interim response moves
    the parser's gen though the transaction's progress comes back to where it was, so the
    packets after it run (the interim status is not the transaction's, with or without the
    skip; the real response's rules fire)."""
    skipping, _ = lockstep(session([("c", [b"POST /up HTTP/1.1\r\nContent-Length: 4\r\n\r\n"]),
                                    ("s", [b"HTTP/1.1 100 Continue\r\n\r\n"]), ("c", [b"abcd"]),
                                    ("s", [b"HTTP/1.1 200 OK\r\nServer: evil\r\nContent-Length: 2\r\n\r\nok"])], 40000))
    assert skipping.hits.get((1, 44)) is None and skipping.hits.get((1, 22)) == 1


def test_the_http_parser_moves_its_gen_except_for_unseen_body_growth():
    from rules.applayer.http import Parser

    p = Parser(HTTP)
    g = p.gen
    p.feed(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n", True)
    assert p.gen == g + 1
    p.feed(b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", False)
    assert p.gen == g + 2
    p.feed(b"y" * 1000, False)
    assert p.gen == g + 2                       # below 2,000: detection sees nothing new
    p.feed(b"y" * 1000, False)
    assert p.gen == g + 3                       # at the minimal inspect size: the body is seen
    p.feed(b"y" * 500, False)
    assert p.gen == g + 4                       # (and grows in sight)
    p.end(False)
    assert p.gen == g + 5


def test_a_rule_reload_runs_the_new_rules_on_the_next_packet():
    """A reload in the middle of a body the direction was idle on: the new rules (their
    per-transaction state starts over) run on the next packet, as without the skip."""
    resp = [b"HTTP/1.1 200 OK\r\nServer: evil\r\nContent-Length: 3000\r\n\r\n", b"y" * 600, b"y" * 600,
            b"y" * 600, b"y" * 600, b"y" * 600]
    frames = session([("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", resp)], 40000)
    skipping, _ = lockstep(frames, TX_ONLY, reload_at=len(frames) - 2)       # before the 4th body segment
    assert skipping.hits.get((1, 22)) == 2                # the server rule again, on the new rules


def test_a_body_past_its_limit_is_not_run_again():
    """response-body-limit 2,500: the segments after the body stopped growing (its bytes kept
    stay the same) are skipped as those below the minimal inspect size are; the body's rules
    fire as without the skip (the mark inside the limit, the one past it never)."""
    resp = [b"HTTP/1.1 200 OK\r\nContent-Length: 4800\r\n\r\n", b"y" * 1200, b"y" * 1196 + b"MARK",
            b"y" * 600, b"y" * 600, b"MARK" + b"y" * 596, b"y" * 600]
    frames = session([("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", resp), ("ack", [b""])], 40000)
    skipping, every = lockstep(frames, TX_ONLY,
                               http=HttpSettings(response_body_minimal_inspect_size=2000, response_body_limit=2500))
    assert skipping.hits.get((1, 45)) == 1
    # kept 1,200 (below 2,000): skipped; 2,400, then 2,500 (the limit): run; the two segments
    # after it (the second with the mark past the limit): skipped; the last completes the body
    assert walks(skipping) == walks(every) - 3, (walks(skipping), walks(every))


BIT_RULES = TX_ONLY + """
alert tcp any any -> any any (msg:"set the bit"; content:"SETBIT"; flowbits:set,b; flowbits:noalert; sid:41;)
alert http any any -> any any (msg:"bit and a 200"; flowbits:isset,b; http.stat_code; content:"200"; sid:42;)
"""


def test_a_rule_waiting_on_a_flowbit_waits_until_the_flowbits_change():
    """flowbits:isset fails on the flow's bits alone: the direction is idle while they stay
    as they were, and the segment whose packet rule sets the bit runs (the rule fires there,
    as without the skip)."""
    resp = [b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n", b"y" * 600, b"y" * 600, b"SETBIT" + b"y" * 594,
            b"y" * 600, b"y" * 600]
    frames = session([("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", resp)], 40000)
    skipping, every = lockstep(frames, BIT_RULES)
    assert skipping.hits.get((1, 42)) == 1
    # the two segments before SETBIT are skipped; SETBIT's runs (the bits changed), the next
    # one shows the body (2,400 bytes) and the last completes it
    assert walks(skipping) == walks(every) - 2, (walks(skipping), walks(every))


def test_a_bit_set_by_a_later_rule_of_the_same_run_is_seen_on_the_next_packet():
    """Rule 51 waits on bit c and comes first in signature order; rule 52, after it in the same
    run, sets c.  The run's flowbits are remembered as it found them, so the next packet runs
    and 51 fires there, as without the skip."""
    rules = TX_ONLY + """
alert http any any -> any any (msg:"reads c"; flowbits:isset,c; flowbits:set,x; http.stat_code; content:"200"; sid:51;)
alert http any any -> any any (msg:"sets c"; flowbits:isset,y; flowbits:set,c; http.stat_code; content:"200"; sid:52;)
alert tcp any any -> any any (msg:"sets y"; flow:to_server; content:"GET"; flowbits:set,y; flowbits:noalert; sid:53;)
"""
    resp = [b"HTTP/1.1 200 OK\r\nContent-Length: 1800\r\n\r\n", b"y" * 600, b"y" * 600, b"y" * 600]
    frames = session([("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"]), ("s", resp)], 40000)
    skipping, _ = lockstep(frames, rules)
    assert skipping.hits.get((1, 52)) == 1 and skipping.hits.get((1, 51)) == 1
