"""The decoder's one-pass path for the common frame (C: rules/_hotpath.c decode_common,
`rules.decode._c_decode_common`) against the general decoder, slot by slot.

The common path builds its Packet without Packet.__init__, storing every slot
itself: whatever frame it takes, every slot must be set and equal to what the
general decoder (`_decode_eth`) makes of the same frame; whatever frame it is
unsure of, it must leave (None) to the general decoder."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scapy.layers.inet import ICMP, IP, TCP, UDP, IPOption_RR
from scapy.layers.inet6 import (
    ICMPv6DestUnreach, ICMPv6EchoReply, ICMPv6EchoRequest, IPv6, IPv6ExtHdrFragment, IPv6ExtHdrHopByHop,
)
from scapy.layers.l2 import Dot1Q, Ether
from scapy.layers.vxlan import VXLAN

from rules.api import FrameMeta
from rules.decode import DecodeOptions, _c_decode_common, _decode_eth, decode
from rules.packet import Packet

C4, S4, C6, S6 = "198.51.100.1", "198.51.100.2", "2001:db8::1", "2001:db8::2"
ETH = Ether(src="02:00:00:00:00:01", dst="02:00:00:00:00:02")
META = FrameMeta(ts=1700000000.5, iface="eth1", vlan=(7,), pcap_cnt=3)
TS = [("NOP", None), ("NOP", None), ("Timestamp", (1, 2))]
SYN_OPTS = [("MSS", 1460), ("SAckOK", b""), ("Timestamp", (1, 0)), ("NOP", None), ("WScale", 7)]


def _bad_tcp_csum():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="PA") / b"data"))
    raw[-1] ^= 1
    return raw


def _bad_ip_csum():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="A")))
    raw[24] ^= 0xFF
    return raw


def _short_udp_len():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"abcdef"))
    raw[38:40] = b"\x00\x0a"                   # shorter than the IP payload: payload and checksum bounded by it
    return raw


def _udp_zero_csum():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2) / b"x"))
    raw[40:42] = b"\x00\x00"
    return raw


def _tcp_options_raw(opts: bytes):
    return bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="A", options=[("NOP", None)] * len(opts))
                 / b"x")[:54] + opts + b"x"


def _tcp_bad_option_len():
    raw = bytearray(bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, options=TS) / b"x"))
    raw[54 + 3] = 40                           # the timestamp option claims 40 bytes
    return raw


# frames the common path takes
TAKEN = {
    "tcp4": ETH / IP(src=C4, dst=S4, ttl=61, id=4242) / TCP(sport=40000, dport=443, seq=7, ack=9, flags="PA",
                                                           window=5000) / b"hello",
    "tcp4-ts": ETH / IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="A", options=TS) / (b"x" * 64),
    "tcp4-syn-opts": ETH / IP(src=C4, dst=S4) / TCP(sport=40000, dport=80, flags="S", options=SYN_OPTS),
    "tcp4-df-odd": ETH / IP(src=C4, dst=S4, flags="DF") / TCP(sport=1, dport=2, flags="PA") / b"odd",
    "tcp4-evil-bit": ETH / IP(src=C4, dst=S4, flags="evil") / TCP(sport=1, dport=2),
    "tcp4-padded": bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, flags="S")) + b"\x00" * 6,
    "tcp4-bad-csum": _bad_tcp_csum(),
    "ip4-bad-csum": _bad_ip_csum(),
    "tcp4-bad-option-len": _tcp_bad_option_len(),
    # two MSS options: decoder.tcp.opt_duplicate; then one claiming too much: both events, in order
    "tcp4-dup-option": _tcp_options_raw(b"\x02\x04\x05\xb4\x02\x04\x05\xb4"),
    "tcp4-dup-then-bad-option": _tcp_options_raw(b"\x02\x04\x05\xb4\x02\x04\x05\xb4\x08\x0a\x00\x00"),
    "tcp4-option-kind-only": _tcp_options_raw(b"\x01\x01\x01\x08"),
    "udp4": ETH / IP(src=C4, dst=S4) / UDP(sport=5353, dport=53) / b"query",
    "udp4-zero-csum": _udp_zero_csum(),
    "udp4-short-len": _short_udp_len(),
    "udp4-bad-csum": ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2, chksum=0xDEAD) / b"x",
    "tcp6": ETH / IPv6(src=C6, dst=S6, hlim=33) / TCP(sport=5555, dport=22, flags="S", options=SYN_OPTS),
    "tcp6-data": ETH / IPv6(src=C6, dst=S6) / TCP(sport=5555, dport=22, flags="PA", options=TS) / (b"y" * 33),
    "udp6": ETH / IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2) / b"xy",
    "udp6-bad-csum": ETH / IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2, chksum=0x1234) / b"xy",
    "icmp4-echo": ETH / IP(src=C4, dst=S4) / ICMP(type=8, id=7, seq=3) / (b"p" * 56),
    "icmp4-reply": ETH / IP(src=S4, dst=C4) / ICMP(type=0, id=7, seq=3) / b"odd",
    "icmp4-echo-bad-csum": ETH / IP(src=C4, dst=S4) / ICMP(type=8, chksum=0xBEEF) / b"x",
    "icmp4-echo-empty": ETH / IP(src=C4, dst=S4) / ICMP(type=8, id=1, seq=1),
    "icmp6-echo": ETH / IPv6(src=C6, dst=S6) / ICMPv6EchoRequest(id=9, seq=4, data=b"ping6"),
    "icmp6-reply-bad-csum": ETH / IPv6(src=S6, dst=C6) / ICMPv6EchoReply(id=9, seq=4, cksum=0x1111, data=b"x"),
}

# frames it leaves to the general decoder
LEFT = {
    "in-band-vlan": ETH / Dot1Q(vlan=5) / IP(src=C4, dst=S4) / TCP(sport=1, dport=2),
    "ip4-options": ETH / IP(src=C4, dst=S4, options=[IPOption_RR()]) / TCP(sport=1, dport=2),
    "ip4-first-fragment": ETH / IP(src=C4, dst=S4, flags="MF") / UDP(sport=1, dport=2) / (b"a" * 16),
    "ip4-later-fragment": ETH / IP(src=C4, dst=S4, frag=3, proto=17) / (b"a" * 16),
    "icmp4-echo-code-1": ETH / IP(src=C4, dst=S4) / ICMP(type=8, code=1) / b"ping",
    "icmp4-unreachable": ETH / IP(src=C4, dst=S4) / ICMP(type=3, code=3) / bytes(IP(src=S4, dst=C4) / UDP()),
    "icmp4-truncated": bytes(ETH / IP(src=C4, dst=S4) / ICMP(type=8) / b"ping")[:-8],
    "icmp6-in-ip4": ETH / IP(src=C4, dst=S4, proto=58) / ICMPv6EchoRequest(),
    "icmp6-unreachable": ETH / IPv6(src=C6, dst=S6) / ICMPv6DestUnreach() / bytes(IPv6(src=S6, dst=C6) / UDP()),
    "ip6-hop-by-hop": ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrHopByHop() / UDP(sport=1, dport=2),
    "ip6-fragment": ETH / IPv6(src=C6, dst=S6) / IPv6ExtHdrFragment(m=1) / UDP(sport=1, dport=2) / b"x",
    "vxlan": ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=4789) / VXLAN(vni=1) / ETH / IP(src=C4, dst=S4) / TCP(),
    "ip4-truncated": bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2) / (b"x" * 40))[:-10],
    "tcp4-doff-too-big": bytes(ETH / IP(src=C4, dst=S4) / TCP(sport=1, dport=2, dataofs=15)),
    "udp4-len-too-big": bytes(ETH / IP(src=C4, dst=S4) / UDP(sport=1, dport=2, len=200) / b"x"),
    "ip6-truncated": bytes(ETH / IPv6(src=C6, dst=S6) / UDP(sport=1, dport=2) / (b"x" * 20))[:-4],
}

OPTIONS = {"csum": DecodeOptions(), "nocsum": DecodeOptions(checksum_validation=False)}


def slot_values(p: Packet) -> dict:
    """Every slot (AttributeError when one is unset), views as (type, bytes)."""
    out = {}
    for name in Packet.__slots__:
        v = getattr(p, name)
        if isinstance(v, (memoryview, bytes, bytearray)):
            v = (type(v).__name__, bytes(v))
        out[name] = v
    return out


def general(frame, opts: DecodeOptions, meta: FrameMeta = META) -> list[Packet]:
    mv = memoryview(frame)
    out: list[Packet] = []
    _decode_eth(mv, 0, len(mv), meta, opts, out, None, meta.vlan, 0)
    return out


def common(frame, opts: DecodeOptions, meta: FrameMeta = META):
    return _c_decode_common(memoryview(frame), meta, opts.checksum_validation,
                            opts.vxlan_ports if opts.vxlan_enabled else None)


def assert_same(frame, opts: DecodeOptions, meta: FrameMeta = META) -> bool:
    """The common path's packet equals the general decoder's; False when it left the frame."""
    fast = common(frame, opts, meta)
    if fast is None:
        return False
    (slow,) = general(frame, opts, meta)
    assert slot_values(fast) == slot_values(slow)
    assert fast.frame.obj is frame or fast.frame.obj is getattr(frame, "obj", None)   # views, not copies
    return True


@pytest.mark.parametrize("opts", list(OPTIONS), ids=list(OPTIONS))
@pytest.mark.parametrize("name", list(TAKEN))
def test_common_frames_decode_as_the_general_decoder_does(name, opts):
    raw = bytes(TAKEN[name])
    for frame in (raw, bytearray(raw), memoryview(raw)):
        assert assert_same(frame, OPTIONS[opts]), name


def test_the_taken_frames_cover_the_checksum_outcomes():
    got = {name: common(bytes(f), OPTIONS["csum"]) for name, f in TAKEN.items()}
    assert got["tcp4"].csum_ok is True and got["tcp6-data"].csum_ok is True and got["udp6"].csum_ok is True
    assert got["tcp4-bad-csum"].csum_ok is False and got["ip4-bad-csum"].csum_ok is False
    assert got["udp4-bad-csum"].csum_ok is False and got["udp6-bad-csum"].csum_ok is False
    assert got["udp4-zero-csum"].csum_ok is True and got["udp4-short-len"].csum_ok is False
    assert got["tcp4-bad-option-len"].events == ("decoder.tcp.opt_invalid_len",)
    assert got["tcp4-dup-option"].events == ("decoder.tcp.opt_duplicate",)
    assert got["tcp4-dup-then-bad-option"].events == ("decoder.tcp.opt_duplicate", "decoder.tcp.opt_invalid_len")
    assert got["tcp4-option-kind-only"].events == ("decoder.tcp.opt_invalid_len",)
    assert bytes(got["udp4-short-len"].payload) == b"ab" and len(got["tcp4-padded"].payload) == 0
    assert got["icmp4-echo"].csum_ok is True and got["icmp6-echo"].csum_ok is True
    assert got["icmp4-echo-bad-csum"].csum_ok is False and got["icmp6-reply-bad-csum"].csum_ok is False
    assert (got["icmp4-echo"].icmp_type, got["icmp4-echo"].icmp_id, got["icmp4-echo"].icmp_seq) == (8, 7, 3)
    assert all(p.csum_ok is None for p in (common(bytes(f), OPTIONS["nocsum"]) for f in TAKEN.values()))


@pytest.mark.parametrize("name", list(LEFT))
def test_other_frames_are_left_to_the_general_decoder(name):
    raw = bytes(LEFT[name])
    assert common(raw, OPTIONS["csum"]) is None
    got = decode(raw, META, OPTIONS["csum"])
    want = general(raw, OPTIONS["csum"])
    assert [slot_values(p) | {"outer": None} for p in got] == [slot_values(p) | {"outer": None} for p in want]


def test_a_frame_without_kernel_vlan_and_in_replay():
    meta = FrameMeta(ts=2.0, iface="", pcap_cnt=9)
    assert assert_same(bytes(TAKEN["tcp4-ts"]), OPTIONS["csum"], meta)
    (p,) = decode(bytes(TAKEN["tcp4-ts"]), meta)
    assert (p.vlan, p.pcap_cnt, p.iface, p.ts) == ((), 9, "", 2.0)


def test_the_meta_is_read_the_same_from_its_slots_or_any_object():
    """rules/_hotpath.c reads a FrameMeta's fields from its slots (offsets found per class):
    another class in between (a plain object with the same attributes), a FrameMeta
    subclass, one with its own __getattribute__, and a FrameMeta with a field deleted (its
    slot unset: the AttributeError of getattr) give what the attributes say."""
    from types import SimpleNamespace

    raw = bytes(TAKEN["tcp4-ts"])
    want = slot_values(common(raw, OPTIONS["csum"], FrameMeta(ts=3.0, iface="p1", pcap_cnt=4, vlan=(7,))))

    class Sub(FrameMeta):
        __slots__ = ("extra",)

    class Seen(FrameMeta):          # its own __getattribute__: asked, not read past
        __slots__ = ()

        def __getattribute__(self, name):
            return (8,) if name == "vlan" else object.__getattribute__(self, name)

    for meta in (SimpleNamespace(ts=3.0, iface="p1", pcap_cnt=4, vlan=(7,)),
                 FrameMeta(ts=3.0, iface="p1", pcap_cnt=4, vlan=(7,)),
                 Sub(ts=3.0, iface="p1", pcap_cnt=4, vlan=(7,)),
                 SimpleNamespace(ts=3.0, iface="p1", pcap_cnt=4, vlan=(7,))):
        assert slot_values(common(raw, OPTIONS["csum"], meta)) == want
    assert common(raw, OPTIONS["csum"], Seen(ts=3.0, iface="p1", pcap_cnt=4, vlan=(7,))).vlan == (8,)
    gone = FrameMeta(ts=3.0, iface="p1")
    del gone.vlan
    with pytest.raises(AttributeError, match="vlan"):
        common(raw, OPTIONS["csum"], gone)


def test_vxlan_port_is_left_only_while_vxlan_is_decoded():
    raw = bytes(LEFT["vxlan"])
    assert common(raw, DecodeOptions(vxlan_enabled=False)) is not None
    assert common(raw, DecodeOptions(vxlan_ports=(8472,))) is not None
    assert assert_same(raw, DecodeOptions(vxlan_enabled=False))


SEEDS = [bytes(f) for f in TAKEN.values()]


@settings(max_examples=3000, deadline=None)
@given(st.sampled_from(SEEDS), st.lists(st.tuples(st.integers(0, 80), st.integers(0, 255)), min_size=1, max_size=4),
       st.integers(0, 20), st.booleans())
def test_mutated_common_frames_agree(seed, edits, cut, csum):
    """Byte flips in the headers and truncations: whatever the common path still takes,
    it decodes exactly as the general decoder."""
    raw = bytearray(seed)
    for off, val in edits:
        if off < len(raw):
            raw[off] = val
    if cut:
        raw = raw[:-cut]
    assert_same(bytes(raw), OPTIONS["csum" if csum else "nocsum"])



def test_the_c_path_holds_no_reference_it_should_not():
    """Refcounts: each decoded Packet owns its slots, and dropping it gives them all back
    (a leak in rules/_hotpath.c would keep the frame's view or the meta's values alive)."""
    import sys

    raw = bytearray(bytes(TAKEN["tcp4-ts"]))
    mv = memoryview(raw)
    meta = FrameMeta(ts=1700000000.5, iface="eth-refcount", vlan=(7,), pcap_cnt=3)
    before = (sys.getrefcount(mv), sys.getrefcount(meta.iface), sys.getrefcount(meta.vlan), sys.getrefcount(meta.ts))
    for _ in range(1000):
        p = _c_decode_common(mv, meta, True, (4789,))
        assert p.frame is mv and p.iface is meta.iface and p.vlan is meta.vlan
        del p
    assert (sys.getrefcount(mv), sys.getrefcount(meta.iface), sys.getrefcount(meta.vlan),
            sys.getrefcount(meta.ts)) == before
    assert _c_decode_common(memoryview(bytes(LEFT["vxlan"])), meta, True, (4789,)) is None


def test_the_c_path_refuses_a_class_without_its_slots():
    from rules import _hotpath
    from rules.decode import Packet as DecodedPacket

    class Short:
        __slots__ = ("ts", "src", "dst")     # some of the slots: the refusal must change nothing

    with pytest.raises(TypeError, match="has no slot iface"):
        _hotpath.set_packet_type(Short)
    assert sorted(_hotpath.SLOTS) == sorted(Packet.__slots__)
    assert DecodedPacket is Packet
    # the refused class did not replace Packet, nor any of its slots' places
    assert assert_same(bytes(TAKEN["udp4"]), OPTIONS["csum"])
