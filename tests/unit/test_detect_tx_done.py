"""A transaction is inspected complete in a direction once every side that direction's
rules read is complete (rules.detect_tx.TxDetector.reads, Tx.final), and the app layer
frees it once it is complete both ways and inspected complete in each direction
(AppLayer.collect).  HTTP rules read one side only (Suricata refuses a rule mixing
request and response buffers), so a closed HTTP session keeps no transaction, nor its
body, until its flow times out.  tests/replay differential app_http_tx_done checks the
alerts against Suricata."""
from __future__ import annotations

from rules.api import FrameMeta
from rules.applayer.http_body import Body
from rules.engine import Engine
from rules.settings import EngineSettings
from tests.unit.test_engine_lean_lane import parse, session

RULES = """
alert http any any -> any any (msg:"uri"; flow:to_server; http.uri; content:"/x"; sid:1;)
alert http any any -> any any (msg:"body"; flow:to_client; file.data; content:"MARK"; sid:2;)
alert http any any -> any any (msg:"uri, no zzz in the packet"; flow:to_server; http.uri; content:"/x"; pkt_data; content:!"zzz"; sid:3;)
"""


def run(steps, rules=RULES):
    eng = Engine(parse(rules), EngineSettings(mode="ips"))
    front = eng.front()
    out = []
    for i, f in enumerate(session(steps, 40000)):
        out.append(front(f, FrameMeta(1.7e9 + i * 0.001, "eth0")))
    (flow,) = eng.flows.table().values()
    return eng, flow, out


REQUEST = ("c", [b"GET /x HTTP/1.1\r\nHost: a\r\nUser-Agent: zzz\r\n\r\n"])


def test_a_complete_exchange_leaves_no_transaction_behind():
    """Request, response with its body over two segments, the client's ACK: the
    transaction goes with the response's last segment, not with the flow."""
    steps = [REQUEST, ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"y" * 1500]), ("ack", [b""]), ("s", [b"y" * 1496 + b"MARK"]), ("ack", [b""])]
    eng, flow, out = run(steps)
    assert flow.app.parser.txs == []
    assert (eng.hits[(1, 1)], eng.hits[(1, 2)]) == (1, 1) and (1, 3) not in eng.hits
    assert eng.finish() == ()                # nothing left for the flow's end to inspect


def test_a_request_is_inspected_complete_before_its_response_ends():
    """The to-server direction is final once the request is complete, while the response is
    still coming; the to-client one only once the response is."""
    steps = [REQUEST, ("s", [b"HTTP/1.1 200 OK\r\nContent-Length: 3000\r\n\r\n"]), ("ack", [b""]),
             ("s", [b"y" * 1500]), ("ack", [b""])]
    eng, flow, out = run(steps)
    (tx,) = flow.app.parser.txs
    assert tx.final == [False, True]


def test_a_direction_whose_rules_read_the_other_side_waits_for_it():
    """TxDetector.reads: a rule without flow direction on a buffer both sides have
    (http.header) is evaluated on each direction; each direction reads its own side.  A
    direction with no rule at all reads no side and is final at once."""
    eng, _flow, _out = run([REQUEST], RULES + 'alert http any any -> any any (http.header; content:"a"; sid:4;)\n')
    assert eng.detector.tx.reads[("http", True)] == (False, True)
    assert eng.detector.tx.reads[("http", False)] == (True, False)
    eng, flow, _out = run([REQUEST], 'alert http any any -> any any (flow:to_server; http.uri; content:"/x"; sid:1;)')
    assert ("http", False) not in eng.detector.tx.reads


def test_a_complete_body_keeps_one_copy():
    """Body.as_bytes: once the body is complete (or full) its bytes are kept once."""
    b = Body(False, 6, b"", 100, to_server=False)
    b.feed(b"abc")
    first = b.as_bytes()
    assert type(b.data) is bytearray and first == b"abc"
    b.feed(b"def")
    assert b.done and b.as_bytes() == b"abcdef" and b.data is b.as_bytes()
    full = Body(False, None, b"", 4, to_server=False)
    full.feed(b"abcdefgh")
    assert full.as_bytes() == b"abcd" and full.data is full.as_bytes()
    full.feed(b"ij")                              # past the limit: counted, not kept
    assert full.as_bytes() == b"abcd" and full.raw_len == 10


def test_a_slot_remembers_the_scans_of_short_values():
    """_Slot.scan: the ids PatternDB.scan gives, remembered per value up to 256 bytes
    (the same Host or Server again costs a lookup), bounded, and not pickled (a rule
    reload sends the detector to the workers)."""
    import pickle

    import rules.detect_tx as dt
    from bridge.reload import serialize

    eng, _flow, _out = run([REQUEST])
    slot = next(s for s in eng.detector.tx.slots[True] if s.patterns)
    pat = next(iter(slot.patterns))[0]
    for v in (pat, b"x" + pat + b"y", b"nothing here", pat * (300 // len(pat) + 1)):
        assert slot.scan(v) == set(slot.db.scan(v))
    assert (b"x" + pat + b"y") in slot.seen and pat * (300 // len(pat) + 1) not in slot.seen
    again = slot.scan(b"nothing here")
    assert again is slot.seen[b"nothing here"] and isinstance(again, frozenset)
    copy = pickle.loads(serialize(slot))         # as a rule reload sends it
    assert copy.seen == {} and copy.patterns == slot.patterns and copy.scan(pat) == slot.scan(pat)
    # the compiled selection's view of the copy is the copy's own fields (its new `seen` dict,
    # its database), not the pickled slot's
    assert copy.packed is not None and copy.packed[9] is copy.seen and copy.packed[8] is copy.db
    assert copy.packed[7] is copy.by_pid and copy.packed[0] == slot.side and copy.packed[1] == slot.progress
    assert slot.packed[9] is slot.seen
    slot.seen.clear()
    for i in range(dt._SEEN_MAX + 5):
        slot.scan(b"v%d" % i)
    assert len(slot.seen) <= dt._SEEN_MAX
