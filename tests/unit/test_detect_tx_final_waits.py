"""A growing HTTP body past its minimal inspect size runs transaction detection on every
segment (TxDetector.run: the parser's gen moves with each one).  Two answers no later
segment can change are now kept instead of worked out again on each:

- a body rule whose chain reads only the first bytes of the body (contents with a depth or
  a within: PayloadChain.prefix_reach) and did not match them is done for the transaction
  once the body holds those bytes (ET 2024829: file.data; content:"LP"; offset:34; depth:2);
- a rule whose flowbits condition failed is not matched again on the transaction while the
  flow's flowbits are the ones it failed on (five ET file.data rules wait on a bit a request
  rule sets: each came up on every segment of a 256 KiB response).

And the prefilter reads a growing body without copying it (rules.applayer.base.GROWN).
Checked in lockstep against an engine without them (every result, event, stat and alert
count the same), and on the number of rule evaluations they save.

A run that matched nothing on a transaction (every candidate done, waiting on the flowbits
or not due yet) is remembered with its candidates, the transaction's progress and the
flowbits: the next segment with the same three skips the candidate walk and counts the same
evaluations (TxDetector.quiet_runs; held to the walk below, evaluation counts included)."""
from __future__ import annotations

import random

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from rules.api import FrameMeta
from rules.applayer.http import Settings as HttpSettings
from rules.engine import Engine
from rules.payload import Content, PayloadChain
from rules.settings import EngineSettings
from tests.unit.test_detect_tx_idle import steps
from tests.unit.test_engine_lean_lane import drive, parse, session

RULES = """
alert http any any -> any any (msg:"a mark near the start"; flow:to_client; file.data; content:"LP"; offset:34; depth:2; sid:61;)
alert http any any -> any any (msg:"a mark, then another close after it"; file.data; content:"y"; depth:1; content:"MARK"; distance:0; within:39; fast_pattern; content:"Z"; distance:0; within:8; sid:62;)
alert http any any -> any any (msg:"no mark at the start"; file.data; content:!"MARK"; depth:4; content:"yy"; depth:40; sid:63;)
alert http any any -> any any (msg:"a mark anywhere"; file.data; content:"MARK"; sid:64;)
alert http any any -> any any (msg:"bit b and a mark"; flowbits:isset,b; file.data; content:"MARK"; sid:65;)
alert http any any -> any any (msg:"bit b and a 200"; flowbits:isset,b; http.stat_code; content:"200"; sid:66;)
alert http any any -> any any (msg:"not bit b, a mark"; flowbits:isnotset,b; file.data; content:"MARK"; sid:67;)
alert tcp any any -> any any (msg:"set the bit"; content:"SETBIT"; flowbits:set,b; flowbits:noalert; sid:41;)
alert http any any -> any any (msg:"a body to the server"; flow:to_server; http.request_body; content:"x"; depth:1; content:"MARK"; distance:0; within:9; fast_pattern; sid:68;)
"""
HTTP = HttpSettings(response_body_minimal_inspect_size=2000, request_body_minimal_inspect_size=2000,
                    response_body_limit=20000, request_body_limit=20000)
CFG = EngineSettings(mode="ips", app={"http": HTTP})


def without_the_kept_answers(engine: Engine) -> Engine:
    """The reference: every body chain without a reach, no flowbits waits kept, and no idle
    direction either (every packet asked runs)."""
    txd = engine.detector.tx
    txd.bit_waits = False
    txd.quiet_runs = False
    txd.idle = lambda parser, d, flow: False
    for s in txd.sigs:
        for sp in (s.rule.app, s.rule.app.other):
            for b in sp.bufs if sp is not None else ():
                b.chain._reach = None
    return engine


def observable(engine: Engine) -> dict:
    s = engine.stats()
    s.pop("detect.tx_evaluated")               # (the point: fewer rules tried)
    return s


def matched(engine: Engine) -> dict:
    """sid -> how many times _match ran for it (the engine's own TxDetector)."""
    txd = engine.detector.tx
    inner = txd._match
    engine.matched = counts = {}

    def counting(s, *args):
        counts[s.rule.sid] = counts.get(s.rule.sid, 0) + 1
        return inner(s, *args)

    txd._match = counting
    return counts


def lockstep(frames, rules: str = RULES):
    kept = Engine(parse(rules), CFG)
    plain = without_the_kept_answers(Engine(parse(rules), CFG))
    counts = matched(kept), matched(plain)
    drive(kept, plain, [(1.7e9 + n * 0.001, f, ("eth0",)) for n, f in enumerate(frames, 1)],
          kept.front(), plain.front(), observe=(observable,))
    return kept, counts


def response(body: bytes, size: int = 600) -> list[bytes]:
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body)
    return [head] + [body[i:i + size] for i in range(0, len(body), size)]


GET = [("c", [b"GET /ok HTTP/1.1\r\nHost: a\r\n\r\n"])]


def test_a_rule_reading_the_first_bytes_is_done_once_the_body_holds_them():
    body = bytearray(b"y" * 12000)       # 20 segments of 600: 2,000 bytes reached on the 4th
    body[100:102] = b"LP"                # 61's fast pattern, not at 34 where 61 wants it
    body[6000:6004] = b"MARK"            # (11th segment) 64 fires there; 62 and 63 read the first 48 bytes
    kept, (seen, plain) = lockstep(session(GET + [("s", response(bytes(body)))], 40000))
    assert kept.hits.get((1, 64)) == 1 and kept.hits.get((1, 63)) == 1
    assert (1, 61) not in kept.hits and (1, 62) not in kept.hits
    # 61's fast pattern is anchored at 34 (offset:34; depth:2): the body holds it elsewhere,
    # so 61 is no candidate at all (rules.payload.content_anchor), in either engine
    assert 61 not in seen and 61 not in plain, (seen, plain)
    # 62 (its fast pattern relative to a content before it: no fixed place, a candidate once
    # the body holds MARK anywhere) was matched once, when its fast pattern came up; the
    # reference matched it again on the segments after (those the body lane hands to
    # transaction detection)
    assert seen[62] == 1, seen
    assert plain[62] >= 4, plain
    # 63 matched at once, 64 where the mark came
    assert seen[63] == plain[63] == 1 and seen[64] == plain[64] == 1, (seen, plain)


def test_a_rule_waiting_on_a_flowbit_is_matched_again_once_the_bits_change():
    body = b"y" * 3000 + b"MARK" + b"y" * 2996 + b"SETBIT" + b"y" * 5994
    kept, (seen, plain) = lockstep(session(GET + [("s", response(body))], 40000))
    assert kept.hits.get((1, 65)) == 1 and kept.hits.get((1, 66)) == 1
    assert kept.hits.get((1, 67)) == 1 and kept.hits.get((1, 64)) == 1
    # 65 waits on b from the segment with the mark: matched there, not again until SETBIT's
    # segment changed the bits (where it fires); the reference matched it on the segments
    # between too
    assert seen[65] == 2, seen
    assert plain[65] >= 4, plain
    # 66 waited on the bit from the status line on: matched there and where the bits changed
    assert seen[66] == 2 and plain[66] > seen[66], (seen, plain)


def test_a_request_body_rule_is_done_the_same_way():
    # the mark past the first 10 bytes 68 reads (its fast pattern relative to the first
    # content: no fixed place of its own, so a candidate once the body holds it)
    req = [b"POST /up HTTP/1.1\r\nContent-Length: 6000\r\n\r\n", b"x" * 20 + b"MARK" + b"x" * 576] + [b"x" * 600] * 9
    kept, (seen, plain) = lockstep(session([("c", req)], 40000))
    assert (1, 68) not in kept.hits
    assert seen[68] == 1 and plain[68] >= 4, (seen, plain)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, marks=st.lists(st.sampled_from([b"MARK", b"LP", b"SETBIT", b"Z", b"yy"]), max_size=6),
       seed=st.integers(0, 2 ** 32 - 1))
def test_random_http_sessions_alert_the_same_with_the_kept_answers(steps, marks, seed):
    lockstep(random_sessions(steps, marks, seed))


def random_sessions(steps, marks, seed) -> list[bytes]:
    """Two sessions: the drawn steps, then a GET answered by a body with the drawn marks in
    it (in segments of a drawn size), and the other way round."""
    rng = random.Random(seed)
    body = bytearray(b"y" * rng.randrange(100, 9000))
    for m in marks:
        at = rng.randrange(0, len(body))
        body[at:at + len(m)] = m
    extra = [("c", GET[0][1]), ("s", response(bytes(body), rng.choice([100, 600, 1448])))]
    return session(steps + extra, 40000) + session(extra + steps, 40001)


# ------------------------------------------------------------------ PayloadChain.prefix_reach
def test_prefix_reach_of_some_chains():
    assert PayloadChain([Content(b"LP", offset=34, depth=2)]).prefix_reach() == 36
    assert PayloadChain([Content(b"MARK", depth=40), Content(b"Z", distance=0, within=8)]).prefix_reach() == 48
    assert PayloadChain([Content(b"MARK", depth=40), Content(b"Z", distance=3, within=8)]).prefix_reach() == 51
    # a negated content does not move where the next one is counted from
    assert PayloadChain([Content(b"a", depth=4), Content(b"b", negated=True, depth=100),
                         Content(b"c", distance=0, within=2)]).prefix_reach() == 100
    assert PayloadChain([Content(b"a", depth=4), Content(b"b", negated=True, distance=0, within=50),
                         Content(b"c", distance=0, within=2)]).prefix_reach() == 54
    # unbounded: no depth, no within, an end anchor
    assert PayloadChain([Content(b"MARK")]).prefix_reach() is None
    assert PayloadChain([Content(b"MARK", depth=4), Content(b"Z", distance=0)]).prefix_reach() is None
    assert PayloadChain([Content(b"MARK", depth=4, endswith=True)]).prefix_reach() is None


contents = st.builds(
    lambda pat, neg, nocase, rel, a, b: Content(
        pat, negated=neg, nocase=nocase, lpattern=pat.lower() if nocase else b"",
        **({"distance": a - 6, "within": b} if rel else {"offset": a, "depth": b + len(pat)})),
    st.sampled_from([b"a", b"ab", b"b", b"Ab", b"ba"]), st.booleans(), st.booleans(), st.booleans(),
    st.integers(0, 12), st.integers(0, 12))


@settings(max_examples=600, deadline=None)
@given(items=st.lists(contents, min_size=1, max_size=4), head=st.binary(max_size=40).map(lambda b: bytes(
    c % 3 + 0x61 if c % 2 else c % 2 + 0x41 for c in b)), tail=st.binary(min_size=1, max_size=30))
def test_a_buffer_holding_the_reach_answers_as_any_longer_one(items, head, tail):
    """Whatever follows the first prefix_reach() bytes, the chain's answer is the same."""
    chain = PayloadChain(items)
    reach = chain.prefix_reach()
    assert reach is not None
    if len(head) < reach:
        head = head + b"a" * (reach - len(head))
    longer = head + bytes(tail)
    assert PayloadChain(items).match_buffer(head) == PayloadChain(items).match_buffer(longer)


# ------------------------------------------------------------------ the prefilter's growing body
def test_the_prefilter_reads_a_growing_body_without_a_copy():
    from rules.applayer.base import GROWN

    e = Engine(parse(RULES), CFG)
    grows = [sl for sls in e.detector.tx.slots.values() for sl in sls if sl.grows]
    assert grows and all(sl.get in GROWN.values() for sl in grows)
    body = b"MARK" + b"y" * 5996
    frames = session(GET + [("s", response(body)[:5])], 40000)   # 2,400 of 6,000 bytes: growing
    front = e.front()
    for n, f in enumerate(frames, 1):
        front(f, FrameMeta(1.7e9 + n * 0.001, "eth0"))
    assert e.hits.get((1, 64)) == 1
    (flow,) = e.flows.all()
    tx = flow.app.parser.txs[0]
    got = [sl.get(tx) for sl in grows if not sl.side]
    assert got and all(v is tx.resp_body.data and type(v) is bytearray for v in got)


# ------------------------------------------------------------------ a run that matched nothing
def quiet_lockstep(frames, rules: str = RULES):
    """The engine against one whose only difference is no quiet-run memo: everything the
    same, the evaluation count too; (engine, runs the memo answered)."""
    kept = Engine(parse(rules), CFG)
    walk = Engine(parse(rules), CFG)
    walk.detector.tx.quiet_runs = False
    answered = [0]
    txd = kept.detector.tx
    inner = txd._candidates

    def spy(tx, d, *a):
        got = inner(tx, d, *a)
        q = tx.found.get(("quiet", d))
        if q is not None and q[0] == got and q[1] == (tx.progress[0], tx.progress[1]):
            answered[0] += 1
        return got

    txd._candidates = spy
    drive(kept, walk, [(1.7e9 + n * 0.001, f, ("eth0",)) for n, f in enumerate(frames, 1)],
          kept.front(), walk.front(), observe=(lambda e: e.stats(),))
    return kept, answered[0]


def test_segments_after_a_run_that_matched_nothing_skip_the_walk():
    body = b"y" * 3000 + b"MARK" + b"y" * 2996 + b"SETBIT" + b"y" * 5994
    kept, answered = quiet_lockstep(session(GET + [("s", response(body))], 40000))
    assert kept.hits.get((1, 65)) == 1 and kept.hits.get((1, 64)) == 1
    # 65 waits on the bit from the mark's segment to SETBIT's: the segments between are quiet
    assert answered >= 4, answered


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(steps=steps, marks=st.lists(st.sampled_from([b"MARK", b"LP", b"SETBIT", b"Z", b"yy"]), max_size=6),
       seed=st.integers(0, 2 ** 32 - 1))
def test_random_http_sessions_count_the_same_with_the_quiet_memo(steps, marks, seed):
    quiet_lockstep(random_sessions(steps, marks, seed))
