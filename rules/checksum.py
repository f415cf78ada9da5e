"""Internet checksums (RFC 1071) for IPv4 headers and TCP/UDP/ICMP(v6).

Used by the decoder to validate (when checksum validation is on) and by the
data plane to fill in frames the kernel hands over with a partial checksum
(TP_STATUS_CSUMNOTREADY: veth and virtio senders with tx offload on).
"""
from __future__ import annotations

import struct

_IPPROTO_TCP, _IPPROTO_UDP, _IPPROTO_ICMP, _IPPROTO_ICMPV6 = 6, 17, 1, 58
_CSUM_OFFSET = {_IPPROTO_TCP: 16, _IPPROTO_UDP: 6, _IPPROTO_ICMP: 2, _IPPROTO_ICMPV6: 2}


def _py_ones_sum(data: bytes | memoryview, initial: int = 0) -> int:
    """`ones_sum` in Python: the words' sum is the big-endian integer of `data` modulo
    0xFFFF (2**16 = 1 mod 0xFFFF); a non-zero total folds to 1..0xFFFF, never 0."""
    total = int.from_bytes(data, "big")
    if len(data) & 1:
        total <<= 8                # the odd byte is the high half of a zero-padded word
    total += initial
    if total == 0:
        return 0
    return total % 0xFFFF or 0xFFFF


try:        # the C sum (rules/_hotpath.c), built by the install; the Python one otherwise
    from rules._hotpath import ones_sum as _c_ones_sum
except ImportError:                # pragma: no cover -- tests/unit/test_csum_ext.py requires it built
    _c_ones_sum = None

# ones_sum(data, initial=0): folded 16-bit one's complement sum of `data` (any buffer;
# odd length padded with a zero byte) plus `initial` (>= 0), in 0..0xFFFF; 0 only when
# both are all zero.
ones_sum = _c_ones_sum if _c_ones_sum is not None else _py_ones_sum


def inet_checksum(data: bytes | memoryview, initial: int = 0) -> int:
    """The checksum to store in a header: ~ones_sum, 0..0xFFFF."""
    return ~ones_sum(data, initial) & 0xFFFF


def _pseudo(frame, l3_off: int) -> tuple[int, int, int, int] | None:
    """(pseudo-header sum, l4 offset, l4 length, proto) of the IP packet at l3_off, or None."""
    ver = frame[l3_off] >> 4
    if ver == 4:
        ihl = (frame[l3_off] & 0x0F) * 4
        total_len, = struct.unpack_from("!H", frame, l3_off + 2)
        frag, = struct.unpack_from("!H", frame, l3_off + 6)
        if frag & 0x3FFF:          # fragments: the L4 checksum covers the reassembled datagram
            return None
        proto = frame[l3_off + 9]
        l4_len = total_len - ihl
        s = ones_sum(frame[l3_off + 12:l3_off + 20], proto + l4_len) if proto != _IPPROTO_ICMP else 0
        return s, l3_off + ihl, l4_len, proto
    if ver == 6:
        payload_len, = struct.unpack_from("!H", frame, l3_off + 4)
        proto = frame[l3_off + 6]
        if proto not in _CSUM_OFFSET:   # extension headers: not handled here
            return None
        s = ones_sum(frame[l3_off + 8:l3_off + 40], proto + payload_len)
        return s, l3_off + 40, payload_len, proto
    return None


def l4_checksum_ok(frame: bytes | memoryview, l3_off: int) -> bool | None:
    """True/False when the TCP/UDP/ICMP checksum could be checked, None when not applicable."""
    try:
        p = _pseudo(frame, l3_off)
        if p is None or p[3] not in _CSUM_OFFSET:
            return None
        s, l4, l4_len, proto = p
        if l4 + l4_len > len(frame):
            return None
        if proto == _IPPROTO_UDP and frame[l4 + 6] == 0 and frame[l4 + 7] == 0 and frame[l3_off] >> 4 == 4:
            return True            # UDP over IPv4: checksum optional
        return ones_sum(frame[l4:l4 + l4_len], s) == 0xFFFF
    except (IndexError, struct.error):
        return None


def fill_l4_checksum(frame: bytearray | memoryview, l3_off: int) -> bool:
    """Compute and store the TCP/UDP/ICMP(v6) checksum in place.  False when not applicable."""
    try:
        p = _pseudo(frame, l3_off)
        if p is None or p[3] not in _CSUM_OFFSET:
            return False
        s, l4, l4_len, proto = p
        if l4 + l4_len > len(frame):
            return False
        off = l4 + _CSUM_OFFSET[proto]
        frame[off] = frame[off + 1] = 0
        c = inet_checksum(frame[l4:l4 + l4_len], s)
        if proto == _IPPROTO_UDP and c == 0:
            c = 0xFFFF
        struct.pack_into("!H", frame, off, c)
        return True
    except (IndexError, struct.error):
        return False


def ipv4_header_ok(frame: bytes | memoryview, l3_off: int) -> bool:
    ihl = (frame[l3_off] & 0x0F) * 4
    return ones_sum(frame[l3_off:l3_off + ihl]) == 0xFFFF
