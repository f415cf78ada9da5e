"""Frame decoder: link-layer frames in, `Packet`s out (sans-I/O, hot path).

`decode(frame, meta, opts)` returns the outermost packet first, then one packet
per tunnel layer (GRE, VXLAN, IP-in-IP) decoded from the tunnel payload; each
inner packet points at its carrier through `outer`.  Usually a 1-tuple.

Link types (`meta.linktype`, pcap's LINKTYPE_* numbers; the live bridge only
ever sees Ethernet).  Every one lands in the same IPv4/IPv6 decoding, so every
rule keyword works alike; what each header gives, as Suricata 7 reads it
(src/decode-sll.c, decode-null.c, decode-raw.c; SLL2 from Suricata 8's
decode-sll2.c, Suricata 7 refuses 276; LOOP is not read by Suricata at all):

  link type          header                                   network layer
  1   Ethernet       dst, src, ethertype (+ VLAN tags)        ethertype
  113 Linux SLL      16 B: packet type, ARPHRD, address       protocol (bytes 14-15) as an ethertype,
                     length, 8-byte address, protocol         VLAN tags decoded as on Ethernet
  276 Linux SLL2     20 B: protocol, reserved, ifindex,       protocol (bytes 0-1), as SLL
                     ARPHRD, packet type, address length,
                     8-byte address
  101 raw, 228 IPv4, none                                     the version nibble decides (Suricata's
  229 IPv6                                                    DecodeRaw serves all three)
  0   NULL           4-byte address family in the capturing   AF_INET 2 -> IPv4; AF_INET6 10 (Linux),
                     machine's byte order: both accepted      23, 24, 26, 28, 30 (Windows, BSDs,
                                                              Solaris, FreeBSD, macOS) -> IPv6
  108 LOOP           the same 4 bytes, network byte order

A link type `decode` does not know gives a packet with no IP layer (callers
check `LINKTYPES` first: `bridge.pcap` refuses other files at open).  A
non-IP protocol (ARP, an unknown ethertype or address family) is a packet
with `ipver` 0, as on Ethernet: forwarded, never inspected, never an error.
The SLL/SLL2 packet type (host, broadcast, multicast, otherhost, outgoing:
the direction the capturing kernel saw the packet go) is read by
`link_pkttype(frame, meta.linktype)`, for whoever reports it (replay's
summary); it is not copied onto every Packet, since neither a rule keyword nor
Suricata's decoders use it (Suricata reads it only live, to skip outgoing
AF_PACKET frames, as `bridge.ring` does).

Rules of the road:
- Never raises on any bytes.  Malformed or truncated input becomes decoder
  events on the packet (`pkt.events`), named as Suricata's event table names
  them ("decoder.ipv4.trunc_pkt"; the `decode-event:` keyword value is the
  part after "decoder.").  Fields decoded before the problem stay valid.
  Link headers: "decoder.sll.pkt_too_small" (< 16 bytes),
  "decoder.sll2.pkt_too_small" (< 20, Suricata 8's name),
  "decoder.ltnull.pkt_too_small" (< 4) and "decoder.ltnull.unsupported_type"
  (NULL and LOOP), "decoder.ipv4.pkt_too_small" for a raw record under 20
  bytes and "decoder.ipraw.invalid_ip_version" for a version nibble other
  than 4 or 6 (Suricata's names, src/decode-events.c).
- Zero copies: one memoryview over the frame; `payload` and `tcp_opts` are
  slices of it.  Inner packets share the outer frame: their `l3_off`/`l4_off`
  are offsets into the same buffer, so `rules.checksum` helpers work on them.
- Lengths are checked explicitly, so the common path raises nothing; the
  try/except in `decode` is only a last safety net (event "decoder.internal").

Field conventions (see rules/packet.py for the slots):
- `l3_off` is where the network header starts in `frame` (14 on untagged
  Ethernet, 16 on SLL, 20 on SLL2, 4 on NULL/LOOP, 0 on raw IP); `eth_type`
  is the ethertype (SLL's protocol field; 0x0800/0x86DD for NULL and raw).
  Only an Ethernet frame has MAC addresses at frame[0:12].
- `ip_off` is the whole 16-bit IPv4 flags+offset word, as BSD's `ip_off`:
  flags (RB 0x8000, DF 0x4000, MF 0x2000) and the 13-bit offset in 8-byte
  units (`ip_off & 0x1fff`).  IPv6 fragments are mapped onto the same layout
  (offset from the fragment header, MF from its M bit); `ip_id` is the IPv4
  identification or the IPv6 fragment header identification.
- `length` is the number of bytes this packet covers (whole frame for the
  outermost one, the tunnelled frame/datagram for inner ones).
- `csum_ok`: None when not checked (validation off, fragments, truncated,
  a frame whose `meta.checksum` hint says not to: see `decode` and
  `ChecksumChecks`), else False when the IPv4 header checksum or the
  TCP/UDP/ICMP(v6) checksum is wrong.  Keywords that need one of the two alone (`ipv4-csum`) can call
  `rules.checksum.ipv4_header_ok(pkt.frame, pkt.l3_off)` themselves.

Fragment reassembly is not done by `decode`: a packet with `frag` True has
`ipver`, `src`, `dst`, `proto`, `ip_id` and `ip_off` set, and, as in Suricata
(checked on crafted pcaps), nothing past the IP layer: ports 0, empty payload,
and for IPv6 `proto` 44 (the fragment header) -- unless
`DecodeOptions.l4_in_first_fragment`.  `rules.defrag.Defragmenter`
(the stateful defrag stage) collects fragments and hands back the
rebuilt datagram, which `decode_ip()` decodes like any frame.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import struct

from rules.api import CSUM_AUTO, CSUM_SKIP, FrameMeta
from rules.checksum import ones_sum
from rules.settings import DecodeOptions  # noqa: F401  (the decoder's settings; re-exported)
from rules.packet import (
    IPPROTO_GRE, IPPROTO_ICMP, IPPROTO_ICMPV6, IPPROTO_TCP, IPPROTO_UDP, Packet,
)

ETH_P_IP = 0x0800
ETH_P_ARP = 0x0806
ETH_P_IPV6 = 0x86DD
ETH_P_8021Q = 0x8100
ETH_P_8021AD = 0x88A8
ETH_P_QINQ = 0x9100        # pre-standard QinQ TPID
ETH_P_TEB = 0x6558         # transparent Ethernet bridging (GRE)
ETH_P_PPP = 0x880B         # PPP in GRE version 1 (PPTP)

VLAN_MAX_LAYERS = 3        # as Suricata: a fourth tag is "vlan.too_many_layers"

# pcap link types (www.tcpdump.org/linktypes.html) that decode() reads
LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LOOP = 108
LINKTYPE_LINUX_SLL = 113
LINKTYPE_IPV4 = 228
LINKTYPE_IPV6 = 229
LINKTYPE_LINUX_SLL2 = 276

SLL_HEADER_LEN = 16
SLL2_HEADER_LEN = 20
_NULL_HEADER_LEN = 4
AF_INET = 2
AF_INET6_ALL = frozenset((10, 23, 24, 26, 28, 30))   # Linux, Winsock, BSD, Solaris, FreeBSD, Darwin

_IPPROTO_IPIP = 4
_IPPROTO_IPV6 = 41
IPV6_EXT_HEADERS = frozenset((0, 43, 44, 51, 60))      # hop-by-hop, routing, fragment, AH, dest options
_IPPROTO_NONE = 59

_u16 = struct.Struct("!H").unpack_from
_u32 = struct.Struct("!I").unpack_from
_ip4 = struct.Struct("!BBHHHBBHII").unpack_from          # ver/ihl tos len id off ttl proto csum src dst
_ip6 = struct.Struct("!IHBBQQQQ").unpack_from           # vtcfl plen nh hlim src(2x64) dst(2x64)
_tcp = struct.Struct("!HHIIBBH").unpack_from            # sport dport seq ack off flags win
_udp = struct.Struct("!HHH").unpack_from                # sport dport len
_icmp = struct.Struct("!BBHHH").unpack_from             # type code csum id seq
_vlan = struct.Struct("!HH").unpack_from                # tci, next ethertype
_u32le = struct.Struct("<I").unpack_from

_EMPTY = memoryview(b"")

_PROTO_NAMES = {IPPROTO_TCP: "TCP", IPPROTO_UDP: "UDP", IPPROTO_ICMP: "ICMP", IPPROTO_ICMPV6: "IPv6-ICMP"}

# ICMPv4 types Suricata knows (RFC 792/950), with the highest valid code per type.
_ICMP4_MAX_CODE = {0: 0, 3: 15, 4: 0, 5: 3, 8: 0, 9: 16, 10: 0, 11: 1, 12: 2,
                   13: 0, 14: 0, 15: 0, 16: 0, 17: 0, 18: 0}
_ICMP4_ERRORS = frozenset((3, 4, 5, 11, 12))
_ICMP4_IDSEQ = frozenset((0, 8, 13, 14, 15, 16, 17, 18))
_ICMP6_ECHO = frozenset((128, 129))
_ICMP6_ERR_MAX_CODE = {1: 6, 2: 0, 3: 1, 4: 2}      # unreachable, too big, time exceeded, parameter
_ICMP6_ERRORS = frozenset(_ICMP6_ERR_MAX_CODE)
_ICMP6_EXPERIMENTAL = frozenset((100, 101, 200, 201))


DEFAULT_OPTIONS = DecodeOptions()


def ip_text(ipver: int, addr: int) -> str:
    """Render an address kept as an int ("198.51.100.1", "2001:db8::1"; the IPv4 dotted
    quad built directly: every EVE line renders two)."""
    if ipver == 4:
        return f"{addr >> 24}.{(addr >> 16) & 255}.{(addr >> 8) & 255}.{addr & 255}"
    if ipver == 6:
        return str(ipaddress.IPv6Address(addr))
    return ""


def proto_name(proto: int) -> str:
    return _PROTO_NAMES.get(proto) or str(proto)


def add_event(pkt: Packet, name: str) -> None:
    if name not in pkt.events:
        pkt.events = pkt.events + (name,)


def _fold_ok(total: int) -> bool:
    # one's complement sum of 16-bit words == value mod 0xFFFF (2**16 = 1 mod 0xFFFF);
    # a correct checksum makes the folded sum 0xFFFF, i.e. 0 mod 0xFFFF.
    return total % 0xFFFF == 0


def _l4_csum_ok(mv: memoryview, pkt: Packet, l4: int, l4_len: int, pdst: int | None) -> bool | None:
    """Validate the TCP/UDP/ICMP(v6) checksum of the L4 segment at [l4, l4+l4_len).

    Same result as `rules.checksum.l4_checksum_ok` (tested), but one big-int
    conversion instead of a struct unpack per word, and it follows IPv6
    extension headers (the pseudo-header uses the upper-layer protocol and,
    behind a routing header with segments left, the final destination `pdst`)."""
    proto = pkt.proto
    seg = mv[l4:l4 + l4_len]
    if pkt.ipver == 4:
        if proto == IPPROTO_UDP and seg[6] == 0 and seg[7] == 0:
            return True            # UDP over IPv4: checksum optional
        pseudo = 0 if proto == IPPROTO_ICMP else pkt.src + pkt.dst + proto + l4_len
    else:
        pseudo = pkt.src + (pkt.dst if pdst is None else pdst) + proto + l4_len
    n = ones_sum(seg)
    if n == 0 and pseudo == 0:
        return False               # an all-zero sum is never a valid checksum
    return _fold_ok(n + pseudo)


# ---------------------------------------------------------------- checksum-checks
# What `checksum-checks: auto` samples, as Suricata 7 (util-checksum.h, ChecksumAutoModeCheck):
# when a source's CHECKSUM_SAMPLE_COUNT-th frame arrives, validation stops for good if
# frames // invalid < CHECKSUM_INVALID_RATIO (more than about one in ten TCP checksums wrong:
# the capture was taken before checksum offload filled them in); otherwise it goes on for good.
CHECKSUM_SAMPLE_COUNT = 1000
CHECKSUM_INVALID_RATIO = 10


class _AutoSource:
    __slots__ = ("frames", "invalid", "off")

    def __init__(self) -> None:
        self.frames = 0            # frames seen with CSUM_AUTO, this one included
        self.invalid = 0           # TCP packets with a wrong checksum among the sampled frames
        self.off = False           # the sample said offload: no more validation


class ChecksumChecks:
    """The per-frame checksum hint (`FrameMeta.checksum`) applied, with the one piece of
    state it needs: `checksum-checks: auto`'s sample.  Owned by the Engine, handed to
    `decode`; no I/O.

    A source is one interface live (`meta.iface`, as Suricata samples each af-packet
    interface; here per Engine, i.e. per worker) and the whole input in replay
    (`meta.pcap_cnt` set: Suricata's pcap-file keeps one sample for every file it reads).
    What counts as invalid is what Suricata's sample counts: a TCP packet whose checksum
    the stream finds wrong (here: the decoder's `csum_ok` False on a TCP packet, which
    the flow and stream stages then ignore)."""

    __slots__ = ("opts", "no_csum", "sources")

    def __init__(self) -> None:
        self.opts = None           # the options last seen, and their copy without validation
        self.no_csum = None
        self.sources: dict[str, _AutoSource] = {}

    def without(self, opts: DecodeOptions) -> DecodeOptions:
        """`opts` with checksum validation off (made once per options object)."""
        if opts is not self.opts:
            self.opts = opts
            self.no_csum = dataclasses.replace(opts, checksum_validation=False)
        return self.no_csum

    def source(self, meta: FrameMeta) -> _AutoSource:
        """Count an auto frame on its source; the sample decides at its last frame."""
        key = "" if meta.pcap_cnt else meta.iface
        src = self.sources.get(key)
        if src is None:
            src = self.sources[key] = _AutoSource()
        if not src.off:
            src.frames += 1
            if (src.frames == CHECKSUM_SAMPLE_COUNT and src.invalid
                    and src.frames // src.invalid < CHECKSUM_INVALID_RATIO):
                src.off = True
        return src

    def stats(self) -> dict[str, int]:
        if not self.sources:
            return {}
        srcs = self.sources.values()
        return {"checksum.auto_sampled": sum(min(s.frames, CHECKSUM_SAMPLE_COUNT) for s in srcs),
                "checksum.auto_invalid": sum(s.invalid for s in srcs),
                "checksum.auto_disabled": sum(s.off for s in srcs)}


def decode(frame: bytes | memoryview, meta: FrameMeta, opts: DecodeOptions = DEFAULT_OPTIONS,
           checks: ChecksumChecks | None = None) -> tuple[Packet, ...]:
    """Decode one frame of link type `meta.linktype` (Ethernet by default).  Never raises.

    Checksums are validated when `opts.checksum_validation` (stream.checksum-validation,
    the master switch) is on and `meta.checksum` allows it: CSUM_SKIP never, CSUM_AUTO
    while `checks`' sample for the frame's source has not said offload (without
    `checks`, CSUM_AUTO validates).  Tunnelled packets follow their carrier's hint;
    datagrams rebuilt from fragments (rules.defrag) are always validated, as Suricata's
    pseudo packets are.

    The common frame -- Ethernet (no in-band VLAN tag), IPv4 without options or IPv6
    without extension headers, unfragmented, TCP, UDP or an ICMP echo of code 0, every
    length consistent, not a VXLAN port -- takes the C one-pass path (`_c_decode_common`,
    rules/_hotpath.c), which makes the same Packet; anything else (and anything it is
    unsure of) the general decoder below."""
    mv = frame if type(frame) is memoryview else memoryview(frame)
    sample = None
    validate = opts.checksum_validation
    hint = meta.checksum
    if hint and validate:
        if hint == CSUM_AUTO:
            if checks is not None:
                sample = checks.source(meta)
                if sample.off:
                    opts = checks.without(opts)
                    validate = False
                    sample = None
                elif sample.frames >= CHECKSUM_SAMPLE_COUNT:
                    sample = None              # sampled, validation stays on: nothing left to count
        elif hint == CSUM_SKIP:
            opts = checks.without(opts) if checks is not None else dataclasses.replace(
                opts, checksum_validation=False)
            validate = False
    if meta.linktype == LINKTYPE_ETHERNET and _c_decode_common is not None:
        try:
            pkt = _c_decode_common(mv, meta, validate, opts.vxlan_ports if opts.vxlan_enabled else None)
        except Exception:          # never expected: the general decoder has the safety net
            pkt = None
        if pkt is not None:
            if sample is not None and pkt.csum_ok is False and pkt.proto == IPPROTO_TCP:
                sample.invalid += 1
            return (pkt,)
    out: list[Packet] = []
    try:
        if meta.linktype == LINKTYPE_ETHERNET:
            _decode_eth(mv, 0, len(mv), meta, opts, out, None, meta.vlan, 0)
        else:
            _LINK_DECODERS.get(meta.linktype, _decode_unknown_link)(mv, meta, opts, out)
    except Exception:              # a decoder bug, never expected: keep what was decoded
        if not out:
            p = _new(mv, 0, len(mv), meta, None, meta.vlan)
            out.append(p)
        add_event(out[-1], "decoder.internal")
    if sample is not None:
        for p in out:
            if p.csum_ok is False and p.proto == IPPROTO_TCP:
                sample.invalid += 1
    return tuple(out)


# ---------------------------------------------------------------- the common frame
# The common frame's one-pass path is C (rules/_hotpath.c decode_common): it makes exactly the
# Packet the general decoder below makes, storing each slot itself (tests/unit/
# test_decode_common.py compares every slot and fuzzes), in about a quarter of the time the
# same path took in Python.  Without the extension (never in an install: tests/unit/
# test_csum_ext.py fails) every frame takes the general decoder.
try:
    from rules._hotpath import SLOTS as _C_SLOTS
    from rules._hotpath import decode_common as _c_decode_common
    from rules._hotpath import set_packet_type as _c_set_packet_type
except ImportError:                # pragma: no cover
    _c_decode_common = None
else:
    if sorted(_C_SLOTS) != sorted(Packet.__slots__):
        raise ImportError(f"rules/_hotpath.c fills the Packet slots {sorted(_C_SLOTS)}, "
                          f"Packet has {sorted(Packet.__slots__)}: add the new slot there and reinstall")
    _c_set_packet_type(Packet)


def decode_ip(frame: bytes | memoryview, meta: FrameMeta, opts: DecodeOptions = DEFAULT_OPTIONS) -> tuple[Packet, ...]:
    """Decode a bare IP packet (no link layer): raw pcaps, defragmented datagrams."""
    mv = frame if type(frame) is memoryview else memoryview(frame)
    out: list[Packet] = []
    try:
        pkt = _new(mv, 0, len(mv), meta, None, meta.vlan)
        out.append(pkt)
        if len(mv) and mv[0] >> 4 == 6:
            pkt.eth_type = ETH_P_IPV6
            _decode_ipv6(mv, 0, len(mv), pkt, meta, opts, out, 0)
        else:
            pkt.eth_type = ETH_P_IP
            _decode_ipv4(mv, 0, len(mv), pkt, meta, opts, out, 0)
    except Exception:
        add_event(out[-1], "decoder.internal")
    return tuple(out)


def _new(mv, start: int, end: int, meta: FrameMeta, outer, vlan) -> Packet:
    pkt = Packet()
    pkt.ts = meta.ts
    pkt.iface = meta.iface
    pkt.pcap_cnt = meta.pcap_cnt
    pkt.vlan = vlan
    pkt.frame = mv
    pkt.length = end - start
    pkt.outer = outer
    return pkt


def _decode_eth(mv, off: int, end: int, meta, opts, out, outer, vlan, depth: int) -> None:
    pkt = Packet()                 # _new() inlined: this is every frame's first step
    pkt.ts = meta.ts
    pkt.iface = meta.iface
    pkt.pcap_cnt = meta.pcap_cnt
    pkt.vlan = vlan
    pkt.frame = mv
    pkt.length = end - off
    if outer is not None:
        pkt.outer = outer
    out.append(pkt)
    if end - off < 14:
        add_event(pkt, "decoder.ethernet.pkt_too_small")
        return
    etype, = _u16(mv, off + 12)
    off += 14
    if etype == ETH_P_IP:          # the common cases inline: a call here would cost every frame
        pkt.eth_type = etype
        pkt.l3_off = off
        _decode_ipv4(mv, off, end, pkt, meta, opts, out, depth)
    elif etype == ETH_P_IPV6:
        pkt.eth_type = etype
        pkt.l3_off = off
        _decode_ipv6(mv, off, end, pkt, meta, opts, out, depth)
    else:                          # VLAN tags, ARP, anything else
        _decode_ethertype(mv, off, end, etype, pkt, meta, opts, out, depth)


# ---------------------------------------------------------------- other link types
# Replay only (the bridge's ports are Ethernet): each makes the outermost Packet,
# reads its link header and goes on in the same IPv4/IPv6 decoding as Ethernet.

def _decode_cooked(mv, meta, opts, out, hdr_len: int, proto_at: int, short_event: str) -> None:
    """A Linux cooked header of `hdr_len` bytes with the protocol (an ethertype) at `proto_at`."""
    end = len(mv)
    pkt = _new(mv, 0, end, meta, None, meta.vlan)
    out.append(pkt)
    if end < hdr_len:
        add_event(pkt, short_event)
        return
    etype, = _u16(mv, proto_at)
    _decode_ethertype(mv, hdr_len, end, etype, pkt, meta, opts, out)


def _decode_sll(mv, meta, opts, out) -> None:
    """LINKTYPE_LINUX_SLL: 16-byte cooked header, protocol in bytes 14-15."""
    _decode_cooked(mv, meta, opts, out, SLL_HEADER_LEN, 14, "decoder.sll.pkt_too_small")


def _decode_sll2(mv, meta, opts, out) -> None:
    """LINKTYPE_LINUX_SLL2: 20-byte cooked header, protocol first."""
    _decode_cooked(mv, meta, opts, out, SLL2_HEADER_LEN, 0, "decoder.sll2.pkt_too_small")


def _decode_ethertype(mv, off: int, end: int, etype: int, pkt: Packet, meta, opts, out, depth: int = 0) -> None:
    """The network layer named by an ethertype at `off` (Suricata's DecodeNetworkLayer),
    VLAN tags first.  `_decode_eth` handles untagged IPv4/IPv6 itself and calls this for
    the rest."""
    if etype == ETH_P_8021Q or etype == ETH_P_8021AD or etype == ETH_P_QINQ:
        tags = list(pkt.vlan)
        while etype == ETH_P_8021Q or etype == ETH_P_8021AD or etype == ETH_P_QINQ:
            if end - off < 4:
                pkt.vlan = tuple(tags)
                pkt.eth_type = etype
                add_event(pkt, "decoder.vlan.header_too_small")
                return
            tci, etype = _vlan(mv, off)
            tags.append(tci & 0x0FFF)
            off += 4
            if len(tags) > VLAN_MAX_LAYERS:
                pkt.vlan = tuple(tags)
                pkt.eth_type = etype
                add_event(pkt, "decoder.vlan.too_many_layers")
                return
        pkt.vlan = tuple(tags)
    pkt.eth_type = etype
    pkt.l3_off = off
    if etype == ETH_P_IP:
        _decode_ipv4(mv, off, end, pkt, meta, opts, out, depth)
    elif etype == ETH_P_IPV6:
        _decode_ipv6(mv, off, end, pkt, meta, opts, out, depth)
    else:                          # ARP, CAN, 802.2 LLC, ...: no IP, body as payload
        pkt.payload = mv[off:end]


def _decode_raw(mv, meta, opts, out) -> None:
    """LINKTYPE_RAW, _IPV4, _IPV6: no link header; the version nibble decides, as
    Suricata's DecodeRaw (which serves all three) does."""
    end = len(mv)
    pkt = _new(mv, 0, end, meta, None, meta.vlan)
    out.append(pkt)
    if end < 20:                   # Suricata: shorter than any IPv4 header, whatever the version
        add_event(pkt, "decoder.ipv4.pkt_too_small")
        return
    ver = mv[0] >> 4
    if ver == 4:
        pkt.eth_type = ETH_P_IP
        _decode_ipv4(mv, 0, end, pkt, meta, opts, out, 0)
    elif ver == 6:
        pkt.eth_type = ETH_P_IPV6
        _decode_ipv6(mv, 0, end, pkt, meta, opts, out, 0)
    else:
        add_event(pkt, "decoder.ipraw.invalid_ip_version")
        pkt.payload = mv[0:end]


def _decode_null(mv, meta, opts, out) -> None:
    """LINKTYPE_NULL: a 4-byte address family in the byte order of the machine that
    captured, so both orders are tried (the two never collide for these values)."""
    end = len(mv)
    pkt = _new(mv, 0, end, meta, None, meta.vlan)
    out.append(pkt)
    if end < _NULL_HEADER_LEN:
        add_event(pkt, "decoder.ltnull.pkt_too_small")
        return
    family, = _u32le(mv, 0)
    if family != AF_INET and family not in AF_INET6_ALL:
        family, = _u32(mv, 0)
    _decode_family(mv, family, end, pkt, meta, opts, out)


def _decode_loop(mv, meta, opts, out) -> None:
    """LINKTYPE_LOOP (OpenBSD): NULL's header in network byte order."""
    end = len(mv)
    pkt = _new(mv, 0, end, meta, None, meta.vlan)
    out.append(pkt)
    if end < _NULL_HEADER_LEN:
        add_event(pkt, "decoder.ltnull.pkt_too_small")
        return
    family, = _u32(mv, 0)
    _decode_family(mv, family, end, pkt, meta, opts, out)


def _decode_family(mv, family: int, end: int, pkt: Packet, meta, opts, out) -> None:
    off = _NULL_HEADER_LEN
    pkt.l3_off = off
    if family == AF_INET:
        pkt.eth_type = ETH_P_IP
        _decode_ipv4(mv, off, end, pkt, meta, opts, out, 0)
    elif family in AF_INET6_ALL:
        pkt.eth_type = ETH_P_IPV6
        _decode_ipv6(mv, off, end, pkt, meta, opts, out, 0)
    else:                          # AppleTalk, OSI, ...: no IP
        add_event(pkt, "decoder.ltnull.unsupported_type")
        pkt.payload = mv[off:end]


def _decode_unknown_link(mv, meta, opts, out) -> None:
    """A link type not in LINKTYPES: the caller's mistake, not the peer's; no IP layer."""
    pkt = _new(mv, 0, len(mv), meta, None, meta.vlan)
    out.append(pkt)
    pkt.payload = mv


# link type -> decoder of the outermost packet (Ethernet is decode()'s inline fast path)
_LINK_DECODERS = {
    LINKTYPE_NULL: _decode_null,
    LINKTYPE_RAW: _decode_raw,
    LINKTYPE_LOOP: _decode_loop,
    LINKTYPE_LINUX_SLL: _decode_sll,
    LINKTYPE_IPV4: _decode_raw,
    LINKTYPE_IPV6: _decode_raw,
    LINKTYPE_LINUX_SLL2: _decode_sll2,
}
LINKTYPES = frozenset((LINKTYPE_ETHERNET, *_LINK_DECODERS))    # what decode() reads

# where the SLL/SLL2 packet type sits: link type -> (offset, struct)
_PKTTYPE_AT = {LINKTYPE_LINUX_SLL: (0, _u16), LINKTYPE_LINUX_SLL2: (10, struct.Struct("!B").unpack_from)}


def link_pkttype(frame: bytes | memoryview, linktype: int) -> int:
    """The Linux packet type of an SLL/SLL2 frame (sll_pkttype: 0 host, 1 broadcast,
    2 multicast, 3 otherhost, 4 outgoing, ...); -1 for other link types or a frame
    too short to hold it."""
    at = _PKTTYPE_AT.get(linktype)
    if at is None or len(frame) < (SLL_HEADER_LEN if linktype == LINKTYPE_LINUX_SLL else SLL2_HEADER_LEN):
        return -1
    return at[1](frame, at[0])[0]


def behind_ethernet(pkt: Packet) -> bool:
    """Does the outermost packet `pkt` sit behind an Ethernet header (MAC addresses at
    frame[0:12])?  Told by where its network header starts, which differs for every link
    type decode() reads: 14 + 4n on Ethernet with n VLAN tags in the bytes, 16 + 4n on
    SLL, 20 + 4n on SLL2, 4 on NULL/LOOP, 0 on raw IP -- so no per-packet field is
    needed (the reject stage asks, replay only: every live frame is Ethernet).  A link
    type added to LINKTYPES must keep its offsets off 14 + 4n."""
    off = pkt.l3_off
    return off >= 14 and (off - 14) & 3 == 0


def network_header(frame: bytes | memoryview, linktype: int) -> tuple[int, int]:
    """(ethertype, offset) of the outermost network header of a frame, VLAN tags skipped;
    ethertype 0 when the link header is short or names no protocol we read.  A light
    read for callers that only need to find the IP header (replay's flow hash); no
    validation past the link layer."""
    n = len(frame)
    if linktype == LINKTYPE_ETHERNET or linktype == LINKTYPE_LINUX_SLL or linktype == LINKTYPE_LINUX_SLL2:
        if linktype == LINKTYPE_ETHERNET:
            at, off = 12, 14
        elif linktype == LINKTYPE_LINUX_SLL:
            at, off = 14, SLL_HEADER_LEN
        else:
            at, off = 0, SLL2_HEADER_LEN
        if n < off:
            return 0, 0
        etype, = _u16(frame, at)
        depth = 0
        while (etype == ETH_P_8021Q or etype == ETH_P_8021AD or etype == ETH_P_QINQ) and depth < VLAN_MAX_LAYERS:
            if n - off < 4:
                return 0, 0
            etype, = _u16(frame, off + 2)
            off += 4
            depth += 1
        return etype, off
    if linktype == LINKTYPE_RAW or linktype == LINKTYPE_IPV4 or linktype == LINKTYPE_IPV6:
        ver = frame[0] >> 4 if n else 0
        return (ETH_P_IP if ver == 4 else ETH_P_IPV6 if ver == 6 else 0), 0
    if linktype == LINKTYPE_NULL or linktype == LINKTYPE_LOOP:
        if n < _NULL_HEADER_LEN:
            return 0, 0
        if linktype == LINKTYPE_NULL:
            family, = _u32le(frame, 0)
            if family != AF_INET and family not in AF_INET6_ALL:
                family, = _u32(frame, 0)
        else:
            family, = _u32(frame, 0)
        if family == AF_INET:
            return ETH_P_IP, _NULL_HEADER_LEN
        return (ETH_P_IPV6 if family in AF_INET6_ALL else 0), _NULL_HEADER_LEN
    return 0, 0


def _decode_ipv4(mv, off: int, end: int, pkt: Packet, meta, opts, out, depth: int) -> None:
    pkt.l3_off = off
    avail = end - off
    if avail < 20:
        add_event(pkt, "decoder.ipv4.pkt_too_small")
        return
    vhl, _tos, ip_len, ip_id, ip_off, ttl, proto, _csum, src, dst = _ip4(mv, off)
    if vhl >> 4 != 4:
        add_event(pkt, "decoder.ipv4.wrong_ip_version")
        return
    hlen = (vhl & 0x0F) << 2
    if hlen < 20:
        add_event(pkt, "decoder.ipv4.hlen_too_small")
        return
    if ip_len < hlen:
        add_event(pkt, "decoder.ipv4.iplen_smaller_than_hlen")
        return
    if hlen > avail:
        add_event(pkt, "decoder.ipv4.hlen_too_small")
        return
    pkt.ipver = 4
    pkt.src = src
    pkt.dst = dst
    pkt.proto = proto
    pkt.ttl = ttl
    pkt.ip_id = ip_id
    pkt.ip_len = ip_len
    pkt.ip_off = ip_off
    if ip_len > avail:
        add_event(pkt, "decoder.ipv4.trunc_pkt")
        ip_end = end
        complete = False
    else:
        ip_end = off + ip_len
        complete = True
    if hlen > 20:
        _ipv4_options(mv, off + 20, off + hlen, pkt)
    l4 = off + hlen
    pkt.l4_off = l4
    if opts.checksum_validation and complete:
        # same result as rules.checksum.ipv4_header_ok, without a per-word unpack
        pkt.csum_ok = ones_sum(mv[off:off + hlen]) == 0xFFFF
    if ip_off & 0x3FFF:
        pkt.frag = True
        if ip_off & 0x1FFF or not opts.l4_in_first_fragment:
            return                 # no L4 header here (or not looked at, as Suricata): no ports, no payload
        complete = False           # first fragment: the L4 checksum covers the whole datagram
    _decode_l4(mv, l4, ip_end, pkt, proto, meta, opts, out, depth, complete)


def _ipv4_options(mv, off: int, end: int, pkt: Packet) -> None:
    seen = set()
    while off < end:
        kind = mv[off]
        if kind == 0:              # end of option list
            return
        if kind == 1:              # no-op
            off += 1
            continue
        if off + 1 >= end:
            add_event(pkt, "decoder.ipv4.opt_malformed")
            return
        olen = mv[off + 1]
        if olen < 2 or off + olen > end:
            add_event(pkt, "decoder.ipv4.opt_invalid_len")
            return
        if kind in seen:
            add_event(pkt, "decoder.ipv4.opt_duplicate")
        seen.add(kind)
        off += olen


def _decode_ipv6(mv, off: int, end: int, pkt: Packet, meta, opts, out, depth: int) -> None:
    pkt.l3_off = off
    avail = end - off
    if avail < 40:
        add_event(pkt, "decoder.ipv6.pkt_too_small")
        return
    vtcfl, plen, nh, hlim, s_hi, s_lo, d_hi, d_lo = _ip6(mv, off)
    if vtcfl >> 28 != 6:
        add_event(pkt, "decoder.ipv6.wrong_ip_version")
        return
    pkt.ipver = 6
    pkt.src = (s_hi << 64) | s_lo
    pkt.dst = (d_hi << 64) | d_lo
    pkt.ttl = hlim
    pkt.ip_len = plen + 40
    pkt.proto = nh
    if plen + 40 > avail:
        add_event(pkt, "decoder.ipv6.trunc_pkt")
        ip_end = end
        complete = False
    else:
        ip_end = off + 40 + plen
        complete = True
    cur = off + 40
    pdst = None                    # final destination from a routing header, for the L4 checksum
    if nh in IPV6_EXT_HEADERS:
        seen = 0
        while nh in IPV6_EXT_HEADERS:
            if ip_end - cur < 8:
                pkt.proto = nh
                pkt.l4_off = cur
                add_event(pkt, "decoder.ipv6.trunc_exthdr")
                return
            nxt = mv[cur]
            if nh == 44:                                   # fragment
                hlen = 8
                fo, = _u16(mv, cur + 2)
                ident, = _u32(mv, cur + 4)
                if mv[cur + 1] != 0 or fo & 0x0006:
                    add_event(pkt, "decoder.ipv6.fh_non_zero_reserved_field")
                # same layout as the IPv4 word: MF 0x2000, 13-bit offset in 8-byte units
                pkt.ip_off = (fo >> 3) | (0x2000 if fo & 1 else 0)
                pkt.ip_id = ident
                if fo & 0xFFF9 == 0:
                    add_event(pkt, "decoder.ipv6.exthdr_useless_fh")   # atomic fragment
                else:
                    pkt.frag = True
                    if not opts.l4_in_first_fragment:
                        # Suricata stops at the fragment header: proto 44, no ports, no payload
                        pkt.proto = 44
                        pkt.l4_off = cur + 8
                        return
            elif nh == 51:                                 # AH: length in 4-byte units, minus 2
                hlen = (mv[cur + 1] + 2) << 2
                if seen & (1 << 51 % 32):
                    add_event(pkt, "decoder.ipv6.exthdr_dupl_ah")
            else:
                hlen = (mv[cur + 1] + 1) << 3
                if nh == 43 and cur + hlen <= ip_end and mv[cur + 3]:     # segments left
                    rtype = mv[cur + 2]
                    if rtype == 0 or rtype == 2:           # address list: the last one is final
                        if hlen >= 24:
                            pdst = int.from_bytes(mv[cur + hlen - 16:cur + hlen], "big")
                    elif rtype == 4 and hlen >= 24:        # segment routing: segment list[0] is final
                        pdst = int.from_bytes(mv[cur + 8:cur + 24], "big")
                if nh == 43 and mv[cur + 2] == 0:
                    add_event(pkt, "decoder.ipv6.rh_type_0")
            if cur + hlen > ip_end:
                pkt.proto = nh
                pkt.l4_off = cur
                add_event(pkt, "decoder.ipv6.trunc_exthdr")
                return
            if nh == 0 or nh == 60:
                _ipv6_options(mv, cur + 2, cur + hlen, pkt, nh == 0)
                if nh == 0 and seen & 1:
                    add_event(pkt, "decoder.ipv6.exthdr_dupl_hh")
            elif nh == 43 and seen & (1 << 43 % 32):
                add_event(pkt, "decoder.ipv6.exthdr_dupl_rh")
            seen |= 1 << nh % 32
            cur += hlen
            nh = nxt
        pkt.proto = nh
    pkt.l4_off = cur
    if nh == _IPPROTO_NONE:
        if cur < ip_end:
            add_event(pkt, "decoder.ipv6.data_after_none_header")
        return
    if pkt.frag:
        if pkt.ip_off & 0x1FFF:    # later fragment
            return
        complete = False
    _decode_l4(mv, cur, ip_end, pkt, nh, meta, opts, out, depth, complete, pdst)


_IPV6_KNOWN_OPTS = frozenset((0x05, 0xC2, 0xC9))     # router alert, jumbo payload, home address


def _ipv6_options(mv, off: int, end: int, pkt: Packet, hop: bool) -> None:
    """Check the TLV options of a hop-by-hop or destination options header."""
    only_padding = True
    while off < end:
        t = mv[off]
        if t == 0:                 # Pad1
            off += 1
            continue
        if off + 1 >= end or off + 2 + mv[off + 1] > end:
            add_event(pkt, "decoder.ipv6.exthdr_invalid_optlen")
            return
        olen = mv[off + 1]
        if t != 1:                 # not PadN (Suricata 7 does not flag a zero-length PadN here)
            only_padding = False
            if t not in _IPV6_KNOWN_OPTS:
                add_event(pkt, "decoder.ipv6.hopopts_unknown_opt" if hop else "decoder.ipv6.dstopts_unknown_opt")
        off += 2 + olen
    if only_padding:
        add_event(pkt, "decoder.ipv6.hopopts_only_padding" if hop else "decoder.ipv6.dstopts_only_padding")


def _decode_l4(mv, l4: int, end: int, pkt: Packet, proto: int, meta, opts, out, depth: int, complete: bool,
               pdst: int | None = None) -> None:
    avail = end - l4
    csum_len = avail
    if proto == IPPROTO_TCP:
        if avail < 20:
            add_event(pkt, "decoder.tcp.pkt_too_small")
            return
        sport, dport, seq, ack, doff, flags, win = _tcp(mv, l4)
        pkt.sport = sport
        pkt.dport = dport
        pkt.seq = seq
        pkt.ack = ack
        pkt.tcp_flags = flags
        pkt.win = win
        hlen = (doff >> 4) << 2
        if hlen < 20:              # Suricata reports a data offset below 5 this way
            add_event(pkt, "decoder.tcp.invalid_optlen")
            return
        if hlen > avail:
            add_event(pkt, "decoder.tcp.hlen_too_small")
            return
        if hlen > 20:
            opts_mv = mv[l4 + 20:l4 + hlen]
            pkt.tcp_opts = opts_mv
            _tcp_options(opts_mv, pkt)
        pkt.payload = mv[l4 + hlen:end]
    elif proto == IPPROTO_UDP:
        if avail < 8:
            add_event(pkt, "decoder.udp.hlen_too_small")
            return
        sport, dport, ulen = _udp(mv, l4)
        pkt.sport = sport
        pkt.dport = dport
        if ulen < 8:
            add_event(pkt, "decoder.udp.len_invalid")
            return
        if ulen > avail:
            if complete:
                add_event(pkt, "decoder.udp.pkt_too_small")
                return
            pend = end             # truncated capture or first fragment: take what is there
        else:
            csum_len = ulen        # bytes after the datagram inside the IP packet: ignored, as Suricata
            pend = l4 + ulen
        pkt.payload = mv[l4 + 8:pend]
        if dport in opts.vxlan_ports and opts.vxlan_enabled:
            _vxlan(mv, l4 + 8, pend, pkt, meta, opts, out, depth)
    elif proto == IPPROTO_ICMP:
        if pkt.ipver == 6:
            add_event(pkt, "decoder.ipv6.icmpv4")
        _icmpv4(mv, l4, end, pkt)
    elif proto == IPPROTO_ICMPV6:
        if pkt.ipver == 4:
            add_event(pkt, "decoder.ipv4.icmpv6")
        _icmpv6(mv, l4, end, pkt)
    elif proto == IPPROTO_GRE:
        _gre(mv, l4, end, pkt, meta, opts, out, depth)
        return
    elif proto == _IPPROTO_IPIP or proto == _IPPROTO_IPV6:
        pkt.payload = mv[l4:end]
        _tunnel(mv, l4, end, ETH_P_IP if proto == _IPPROTO_IPIP else ETH_P_IPV6, pkt, meta, opts, out, depth)
        return
    else:
        pkt.payload = mv[l4:end]
        return
    if opts.checksum_validation and complete and pkt.csum_ok is not False:
        ok = _l4_csum_ok(mv, pkt, l4, csum_len, pdst)
        if ok is not None:
            pkt.csum_ok = ok


def _tcp_options(o: memoryview, pkt: Packet) -> None:
    i = 0
    n = len(o)
    seen = 0
    while i < n:
        kind = o[i]
        if kind == 0:
            return
        if kind == 1:
            i += 1
            continue
        if i + 1 >= n:
            add_event(pkt, "decoder.tcp.opt_invalid_len")
            return
        olen = o[i + 1]
        if olen < 2 or i + olen > n:
            add_event(pkt, "decoder.tcp.opt_invalid_len")
            return
        bit = 1 << (kind & 63)
        if seen & bit and kind < 64:
            add_event(pkt, "decoder.tcp.opt_duplicate")
        seen |= bit
        i += olen


def _icmpv4(mv, l4: int, end: int, pkt: Packet) -> None:
    avail = end - l4
    if avail < 8:
        if avail >= 2:
            pkt.icmp_type = mv[l4]
            pkt.icmp_code = mv[l4 + 1]
        add_event(pkt, "decoder.icmpv4.pkt_too_small")
        return
    itype, code, _c, ident, seq = _icmp(mv, l4)
    pkt.icmp_type = itype
    pkt.icmp_code = code
    pkt.payload = mv[l4 + 8:end]
    maxcode = _ICMP4_MAX_CODE.get(itype)
    if maxcode is None:
        add_event(pkt, "decoder.icmpv4.unknown_type")
        return
    if code > maxcode:
        add_event(pkt, "decoder.icmpv4.unknown_code")
    if itype in _ICMP4_IDSEQ:
        pkt.icmp_id = ident
        pkt.icmp_seq = seq
    elif itype in _ICMP4_ERRORS:
        inner = end - (l4 + 8)
        if inner < 20:
            add_event(pkt, "decoder.icmpv4.ipv4_trunc_pkt")
        elif mv[l4 + 8] >> 4 != 4:
            add_event(pkt, "decoder.icmpv4.ipv4_unknown_ver")


def _icmpv6(mv, l4: int, end: int, pkt: Packet) -> None:
    avail = end - l4
    if avail < 8:
        if avail >= 2:
            pkt.icmp_type = mv[l4]
            pkt.icmp_code = mv[l4 + 1]
        add_event(pkt, "decoder.icmpv6.pkt_too_small")
        return
    itype, code, _c, ident, seq = _icmp(mv, l4)
    pkt.icmp_type = itype
    pkt.icmp_code = code
    pkt.payload = mv[l4 + 8:end]
    if itype in _ICMP6_ECHO:
        pkt.icmp_id = ident
        pkt.icmp_seq = seq
        if code != 0:
            add_event(pkt, "decoder.icmpv6.unknown_code")
    elif itype in _ICMP6_ERRORS:
        if code > _ICMP6_ERR_MAX_CODE[itype]:
            add_event(pkt, "decoder.icmpv6.unknown_code")
        inner = end - (l4 + 8)
        if inner < 40:
            add_event(pkt, "decoder.icmpv6.ipv6_trunc_pkt")
        elif mv[l4 + 8] >> 4 != 6:
            add_event(pkt, "decoder.icmpv6.ipv6_unknown_version")
    elif itype in _ICMP6_EXPERIMENTAL:
        add_event(pkt, "decoder.icmpv6.experimentation_type")
    elif itype == 0 or 5 <= itype <= 99 or 102 <= itype <= 126 or 162 <= itype <= 199 or 202 <= itype <= 254:
        add_event(pkt, "decoder.icmpv6.unassigned_type")


def _gre(mv, l4: int, end: int, pkt: Packet, meta, opts, out, depth: int) -> None:
    avail = end - l4
    if avail < 4:
        add_event(pkt, "decoder.gre.pkt_too_small")
        pkt.payload = mv[l4:end]
        return
    flags, ptype = _vlan(mv, l4)
    ver = flags & 0x0007
    clean = pkt.events             # a malformed GRE header: report it, do not decode inside
    hlen = 4
    if ver == 0:
        if flags & 0x0700:                                 # recursion control
            add_event(pkt, "decoder.gre.version0_recur")
        if flags & 0x00F8:
            add_event(pkt, "decoder.gre.version0_flags")
        if flags & 0xC000:                                 # checksum and/or routing: csum + offset
            hlen += 4
        if flags & 0x2000:                                 # key
            hlen += 4
        if flags & 0x1000:                                 # sequence
            hlen += 4
        if hlen > avail:
            add_event(pkt, "decoder.gre.version0_hdr_too_big")
            pkt.payload = mv[l4:end]
            return
        if flags & 0x4000:                                 # source route entries, up to a null SRE
            while True:
                if l4 + hlen + 4 > end:
                    add_event(pkt, "decoder.gre.version0_hdr_too_big")
                    pkt.payload = mv[l4:end]
                    return
                af, = _u16(mv, l4 + hlen)
                sre_len = mv[l4 + hlen + 3]
                hlen += 4 + sre_len
                if af == 0 and sre_len == 0:
                    break
            if hlen > avail:
                add_event(pkt, "decoder.gre.version0_hdr_too_big")
                pkt.payload = mv[l4:end]
                return
    elif ver == 1:
        if flags & 0x8000:
            add_event(pkt, "decoder.gre.version1_chksum")
        if flags & 0x4000:
            add_event(pkt, "decoder.gre.version1_route")
        if flags & 0x0800:
            add_event(pkt, "decoder.gre.version1_ssr")
        if flags & 0x0700:
            add_event(pkt, "decoder.gre.version1_recur")
        if flags & 0x0078:
            add_event(pkt, "decoder.gre.version1_flags")
        if ptype != ETH_P_PPP:
            add_event(pkt, "decoder.gre.version1_wrong_protocol")
        if not flags & 0x2000:
            add_event(pkt, "decoder.gre.version1_no_key")
        else:
            hlen += 4                                      # payload length + call id
        if flags & 0x1000:
            hlen += 4
        if flags & 0x0080:                                 # acknowledgment number
            hlen += 4
        if hlen > avail:
            add_event(pkt, "decoder.gre.version1_hdr_too_big")
            pkt.payload = mv[l4:end]
            return
    else:
        add_event(pkt, "decoder.gre.wrong_version")
        pkt.payload = mv[l4:end]
        return
    inner = l4 + hlen
    pkt.payload = mv[inner:end]
    if not opts.gre_enabled or pkt.events is not clean:
        return
    if ver == 1:
        if ptype != ETH_P_PPP or inner >= end:
            return
        # PPP: optional address/control (ff 03), then a 1- or 2-byte protocol field
        if end - inner >= 2 and mv[inner] == 0xFF and mv[inner + 1] == 0x03:
            inner += 2
        if inner >= end:
            return
        if mv[inner] & 1:
            pproto = mv[inner]
            inner += 1
        elif end - inner >= 2:
            pproto, = _u16(mv, inner)
            inner += 2
        else:
            return
        if pproto == 0x21:
            _tunnel(mv, inner, end, ETH_P_IP, pkt, meta, opts, out, depth)
        elif pproto == 0x57:
            _tunnel(mv, inner, end, ETH_P_IPV6, pkt, meta, opts, out, depth)
        return
    if ptype == ETH_P_IP or ptype == ETH_P_IPV6 or ptype == ETH_P_TEB:
        _tunnel(mv, inner, end, ptype, pkt, meta, opts, out, depth)


def _vxlan(mv, off: int, end: int, pkt: Packet, meta, opts, out, depth: int) -> None:
    # 8-byte header: flags (I bit 0x08 = VNI valid), 3 reserved, VNI (24 bits), 1 reserved
    if end - off < 8 + 14 or not mv[off] & 0x08:
        return                     # not VXLAN (or nothing inside): an ordinary UDP payload
    _tunnel(mv, off + 8, end, ETH_P_TEB, pkt, meta, opts, out, depth)


def _tunnel(mv, off: int, end: int, kind: int, outer: Packet, meta, opts, out, depth: int) -> None:
    if off >= end:
        return                     # an empty tunnel carries no packet
    if depth >= opts.max_tunnel_depth:
        add_event(outer, "decoder.too_many_layers")
        return
    depth += 1
    if kind == ETH_P_TEB:
        _decode_eth(mv, off, end, meta, opts, out, outer, outer.vlan, depth)
        return
    pkt = _new(mv, off, end, meta, outer, outer.vlan)
    out.append(pkt)
    pkt.eth_type = kind
    if kind == ETH_P_IP:
        _decode_ipv4(mv, off, end, pkt, meta, opts, out, depth)
    else:
        _decode_ipv6(mv, off, end, pkt, meta, opts, out, depth)
