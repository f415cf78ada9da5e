"""The VLAN tag-count boundary (rules.decode.VLAN_MAX_LAYERS).

Suricata 7 decodes up to 3 VLAN layers per packet ("The maximum number of layers
supported per packet is 3", the vlan.id keyword's documentation; decode-vlan.c
raises vlan.too_many_layers when a fourth is met and stops decoding the packet).  The
tag the kernel stripped into the ring header (FrameMeta.vlan) is the first layer, as
af-packet's vlan_idx is 1 before the in-band tags are read.  Tested at the limit and
one past it, in-band only and with the kernel's tag, in the decoder, in replay's
network_header and through the engine."""
from __future__ import annotations

import pytest
from scapy.layers.inet import IP, UDP
from scapy.layers.l2 import Dot1AD, Dot1Q, Ether

from rules.api import FrameMeta, Verdict
from rules.decode import LINKTYPE_ETHERNET, VLAN_MAX_LAYERS, DecodeOptions, decode, network_header
from rules.engine import Engine
from rules.events import Alert
from rules.parser import parse_rule
from rules.settings import EngineSettings

C4, S4 = "198.51.100.1", "203.0.113.2"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
OPTS = DecodeOptions(checksum_validation=False)
TOO_MANY = "decoder.vlan.too_many_layers"


def tagged(ids, outer_ad=False) -> bytes:
    f = ETH
    for i, vid in enumerate(ids):
        f = f / (Dot1AD(vlan=vid) if outer_ad and i == 0 else Dot1Q(vlan=vid))
    return bytes(f / IP(src=C4, dst=S4) / UDP(sport=5000, dport=53) / b"query")


def one(frame: bytes, kernel=()):
    meta = FrameMeta(ts=1.0, iface="eth0", vlan=tuple(kernel), tpid=(0x8100,) * len(kernel))
    pkts = decode(frame, meta, OPTS)
    assert len(pkts) == 1
    return pkts[0]


def test_the_limit_is_three_as_in_suricata():
    assert VLAN_MAX_LAYERS == 3


@pytest.mark.parametrize("n", [1, 2, 3], ids=lambda n: f"{n}-tags")
def test_up_to_three_in_band_tags_are_decoded(n):
    ids = tuple(range(101, 101 + n))
    p = one(tagged(ids))
    assert TOO_MANY not in p.events
    assert p.vlan == ids and p.eth_type == 0x0800 and p.l3_off == 14 + 4 * n
    assert (p.ipver, p.proto, p.sport, p.dport, bytes(p.payload)) == (4, 17, 5000, 53, b"query")


@pytest.mark.parametrize("n", [4, 5], ids=lambda n: f"{n}-tags")
def test_a_fourth_in_band_tag_is_too_many_layers(n):
    ids = tuple(range(101, 101 + n))
    p = one(tagged(ids))
    assert TOO_MANY in p.events
    assert p.ipver == 0 and p.proto == 0 and p.sport == 0
    assert p.vlan == ids[:4]                  # decoding stops at the fourth


@pytest.mark.parametrize("in_band,too_many", [(1, False), (2, False), (3, True)], ids=["1+1", "1+2", "1+3"])
def test_the_kernels_tag_is_the_first_layer(in_band, too_many):
    ids = tuple(range(201, 201 + in_band))
    p = one(tagged(ids), kernel=(7,))
    assert (TOO_MANY in p.events) is too_many
    assert p.ipver == (0 if too_many else 4)
    if not too_many:
        assert p.vlan == (7,) + ids and p.l3_off == 14 + 4 * in_band


def test_three_mixed_tpids_are_decoded():
    frame = bytes(ETH / Dot1AD(vlan=1) / Dot1Q(vlan=2) / Dot1Q(vlan=3, type=0x0800) / IP(src=C4, dst=S4) / UDP())
    mixed = bytearray(frame)
    mixed[20:22] = b"\x91\x00"                # the third tag's TPID as the old QinQ 0x9100
    p = one(bytes(mixed))
    assert p.vlan == (1, 2, 3) and p.ipver == 4 and TOO_MANY not in p.events


@pytest.mark.parametrize("n,cut", [(3, 2), (2, 1)], ids=["third-tag-cut", "second-tag-cut"])
def test_a_cut_tag_below_the_limit_is_header_too_small_not_too_many(n, cut):
    frame = tagged(range(1, n + 1))[:14 + 4 * cut + 2]
    p = one(frame)
    assert "decoder.vlan.header_too_small" in p.events and TOO_MANY not in p.events


@pytest.mark.parametrize("n,ethertype,off", [
    (1, 0x0800, 18), (2, 0x0800, 22), (3, 0x0800, 26), (4, 0x8100, 26),
], ids=lambda v: str(v))
def test_network_header_skips_three_tags_at_most(n, ethertype, off):
    assert network_header(tagged(range(1, n + 1)), LINKTYPE_ETHERNET) == (ethertype, off)


@pytest.mark.parametrize("n,verdict", [(3, Verdict.DROP), (4, Verdict.FORWARD)], ids=["3-tags", "4-tags"])
def test_the_engine_matches_through_three_tags_and_sees_the_event_on_four(n, verdict):
    e = Engine([parse_rule('drop udp any any -> any 53 (msg:"dns"; content:"query"; sid:1;)'),
                parse_rule('alert pkthdr any any -> any any (msg:"vlan"; decode-event:vlan.too_many_layers; sid:2;)')],
               EngineSettings(mode="ips"))
    r = e.inspect(tagged(range(1, n + 1)), FrameMeta(ts=1.0, iface="eth0"))
    assert r.verdict == verdict
    assert [ev.sid for ev in r.events if isinstance(ev, Alert)] == ([1] if n == 3 else [2])
