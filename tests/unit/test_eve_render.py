"""bridge.eve's short cuts render exactly what the plain way does: `timestamp` makes the
date and time of day once per second, and `dumps` puts an alert's `alert` object, rendered
once per rule and action, into the line.  Both are checked against the reference rendering
(datetime for every field, json.dumps of the whole `to_eve` dict) on random events."""
from __future__ import annotations

import datetime as dt
import json

from hypothesis import given, settings
from hypothesis import strategies as st

from bridge.eve import dumps, timestamp, to_eve
from rules.events import DROP_REASONS, Alert, Drop, PacketInfo


def reference_timestamp(ts: float) -> str:
    us = round(ts * 1_000_000)
    d = dt.datetime.fromtimestamp(us // 1_000_000, dt.UTC).replace(microsecond=us % 1_000_000)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"


def reference(event) -> str:
    return json.dumps(to_eve(event), separators=(",", ":"))


times = st.one_of(
    st.floats(min_value=-1e9, max_value=4e9, allow_nan=False),
    # just below and at a second's end: rounding to the microsecond carries into the second
    st.integers(0, 4_000_000_000).map(lambda s: s + 0.9999995),
    st.integers(0, 4_000_000_000).map(lambda s: s - 0.0000004),
    st.integers(0, 4_000_000_000).map(float),
)
text = st.text(max_size=40)          # quotes, backslashes, control and non-ASCII characters
packets = st.builds(
    PacketInfo,
    ts=times,
    iface=st.sampled_from(["", "eth0", "vé0"]),
    pcap_cnt=st.integers(0, 10**6),
    vlan=st.lists(st.integers(0, 4095), max_size=2).map(tuple),
    flow_id=st.integers(0, 2**52),
    ipver=st.sampled_from([0, 4, 6]),
    src=st.integers(0, 2**32 - 1),
    dst=st.integers(0, 2**32 - 1),
    sport=st.integers(0, 65535),
    dport=st.integers(0, 65535),
    proto=st.sampled_from([1, 6, 17, 58, 132, 47]),
    to_server=st.sampled_from([None, True, False]),
    icmp_type=st.integers(-1, 255),
    icmp_code=st.integers(-1, 255),
    pkt_src=st.sampled_from(["wire/pcap", "defrag", "stream (flow timeout)"]),
    app_proto=st.one_of(st.sampled_from(["", "http", "tls", "failed"]), text),
)
metadata = st.lists(st.one_of(st.sampled_from(["created_at 2010_09_23", "updated_at 2019_07_26",
                                               "Former_Category INFO", "former_category info",
                                               "key", " spaced  value "]), text), max_size=5).map(tuple)
alerts = st.builds(
    Alert,
    pkt=packets,
    action=st.sampled_from(["allowed", "blocked"]),
    rule_action=st.sampled_from(["alert", "drop", "pass"]),
    gid=st.integers(0, 10),
    sid=st.integers(1, 10),              # few rules: the cached rendering is reused across events
    rev=st.integers(0, 3),
    msg=text,
    category=text,
    severity=st.integers(1, 255),
    metadata=metadata,
)


drops = st.builds(
    Drop,
    pkt=packets,
    reason=st.sampled_from(sorted(DROP_REASONS) + ["policy:stream_midstream"]),
    sid=st.integers(0, 10),
    alert=st.one_of(st.none(), alerts),
    ip_hdr=st.binary(max_size=24),
    l4_hdr=st.binary(max_size=24),
)


@settings(max_examples=400, deadline=None)
@given(times)
def test_timestamp_is_the_datetime_rendering(ts):
    assert timestamp(ts) == reference_timestamp(ts)


@settings(max_examples=600, deadline=None)
@given(st.lists(st.one_of(alerts, drops), min_size=1, max_size=6))
def test_an_alert_or_drop_line_is_the_whole_dict_rendered(events):
    for e in events:
        line = dumps(e)
        assert line == reference(e)
        embedded = e if isinstance(e, Alert) else e.alert
        assert json.loads(line).get("alert", {}).get("signature_id") == (embedded.sid if embedded else None)


def test_the_same_rule_in_two_actions_and_two_packets_renders_each_as_itself():
    pkt = PacketInfo(ts=1700000000.25, iface="eth0", ipver=4, src=0xC6336401, dst=0xC6336402, proto=6,
                     sport=40000, dport=80, to_server=True, app_proto="http")
    a = Alert(pkt, "allowed", "alert", 1, 7, 1, 'say "hi"', "Misc activity", 3, ("created_at 2010_09_23",))
    b = Alert(PacketInfo(ts=1700000001.5), "blocked", "drop", 1, 7, 1, 'say "hi"', "Misc activity", 3,
              ("created_at 2010_09_23",))
    for e in (a, b, a):
        assert dumps(e) == reference(e)
    assert json.loads(dumps(a))["app_proto"] == "http" and "app_proto" not in json.loads(dumps(b))
    assert json.loads(dumps(b))["alert"]["action"] == "blocked"
