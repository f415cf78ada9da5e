"""IP fragment reassembly (the defrag stage).

Stateful (unlike `decode`), still sans-I/O: time comes from packet stamps and
`expire(now)`.  The engine feeds every packet with `frag` set to `add()`; when
a datagram completes, `add()` returns it as bytes (a bare IP packet) and
`reassembled()` decodes it like any frame (`decode_ip`), with the ts, iface,
VLANs and tunnel parent of the fragment that completed it.  The fragments
themselves still go through detection and forwarding one by one (inline, a
verdict on the reassembled datagram is a verdict on its last fragment).

Overlaps follow what Suricata 7's default ("bsd") policy produces, checked on
crafted pcaps: a fragment starting at or after an overlapping earlier one is
trimmed on the left (dropped if contained); one starting before an earlier one
and covering it replaces it; one starting before and ending inside it is kept,
and the datagram is then laid out in offset order (the higher offset wins
there).  The overlapping fragment gets "decoder.ipv4.frag_overlap" /
"decoder.ipv6.frag_overlap".  Per-host policies are not modelled.
"""
from __future__ import annotations

import struct

from rules.api import FrameMeta
from rules.checksum import inet_checksum
from rules.decode import DEFAULT_OPTIONS, IPV6_EXT_HEADERS, DecodeOptions, add_event, decode_ip
from rules.packet import Packet
from rules.settings import DefragSettings

class _FragTracker:
    __slots__ = ("first_ts", "frags", "total", "header", "nh_off", "nh", "hlen", "nbytes")

    def __init__(self, ts: float) -> None:
        self.first_ts = ts
        self.frags: list[list] = []    # [start, end, data, ltrim, skipped] in arrival order
        self.total = -1            # datagram payload length, known once the last fragment arrived
        self.header = None         # IPv4 header / IPv6 unfragmentable part, from the offset-0 fragment
        self.nh_off = 0            # IPv6: offset in `header` of the next-header byte to patch
        self.nh = 0                # IPv6: next header of the fragmentable part
        self.hlen = 0
        self.nbytes = 0


def _ipv6_frag_header(mv, l3: int, end: int) -> tuple[int, int] | None:
    """(offset of the fragment header, offset of the next-header byte naming it)."""
    nh_at = l3 + 6
    nh = mv[nh_at]
    cur = l3 + 40
    while nh in IPV6_EXT_HEADERS:
        if cur + 8 > end:
            return None
        if nh == 44:
            return cur, nh_at
        hlen = (mv[cur + 1] + 2) << 2 if nh == 51 else (mv[cur + 1] + 1) << 3
        nh_at = cur
        nh = mv[cur]
        cur += hlen
    return None


MAX_FRAGS_PER_DATAGRAM = 256     # a datagram made of more fragments is given up (counted)


class Defragmenter:
    """Datagrams in reassembly, at most `settings.trackers` at once and `settings.max_frags`
    fragments held in all: past either bound the oldest datagram is given up (counted as
    evicted), as Suricata reuses its oldest tracker."""

    def __init__(self, settings: DefragSettings = DefragSettings(), decoder: DecodeOptions = DEFAULT_OPTIONS) -> None:  # noqa: B008
        self.timeout = settings.timeout
        self.max_trackers = settings.trackers
        self.max_held = settings.max_frags
        self.decoder = decoder
        self.held = 0                                      # fragments held in all trackers
        self._trackers: dict[tuple, _FragTracker] = {}   # insertion order = oldest first
        self.counters = {"defrag.fragments": 0, "defrag.reassembled": 0, "defrag.overlaps": 0,
                         "defrag.timeouts": 0, "defrag.evicted": 0, "defrag.too_large": 0,
                         "defrag.too_many_frags": 0}

    def __len__(self) -> int:
        return len(self._trackers)

    def feed(self, pkt: Packet) -> tuple[Packet, ...]:
        """Take one fragment; the decoded packets of the datagram it completes (outermost
        first), or () while the datagram is incomplete."""
        data = self.add(pkt)
        return () if data is None else self.reassembled(data, pkt, self.decoder)

    def _evict_oldest(self) -> None:
        oldest = next(iter(self._trackers))
        self._drop(oldest)
        self.counters["defrag.evicted"] += 1

    def _drop(self, key) -> None:
        self.held -= len(self._trackers.pop(key).frags)

    def add(self, pkt: Packet) -> bytes | None:
        """Take one fragment; the reassembled IP datagram when it completes."""
        if not pkt.frag or not pkt.ipver:
            return None
        mv = pkt.frame
        l3 = pkt.l3_off
        ip_end = l3 + pkt.ip_len
        if ip_end > len(mv):
            return None                                  # truncated: cannot contribute
        c = self.counters
        c["defrag.fragments"] += 1
        v4 = pkt.ipver == 4
        if v4:
            hlen = (mv[l3] & 0x0F) << 2
            data_start = l3 + hlen
            key = (4, pkt.src, pkt.dst, pkt.ip_id, pkt.proto, pkt.vlan)
        else:
            where = _ipv6_frag_header(mv, l3, ip_end)
            if where is None:
                return None
            fh, nh_at = where
            data_start = fh + 8
            key = (6, pkt.src, pkt.dst, pkt.ip_id, 0, pkt.vlan)
        start = (pkt.ip_off & 0x1FFF) << 3
        data = bytes(mv[data_start:ip_end])
        end = start + len(data)
        more = pkt.ip_off & 0x2000
        ver = "ipv4" if v4 else "ipv6"
        if more and len(data) & 7 and not v4:
            add_event(pkt, "decoder.ipv6.frag_invalid_length")
        tr = self._trackers.get(key)
        if tr is None:
            if len(self._trackers) >= self.max_trackers:
                self._evict_oldest()
            tr = self._trackers[key] = _FragTracker(pkt.ts)
        limit = 65535 - (((mv[l3] & 0x0F) << 2) if v4 else 0)
        if end > limit:
            add_event(pkt, f"decoder.{ver}.frag_pkt_too_large")
            c["defrag.too_large"] += 1
            self._drop(key)
            return None
        if len(tr.frags) >= MAX_FRAGS_PER_DATAGRAM:
            c["defrag.too_many_frags"] += 1
            self._drop(key)
            return None
        ltrim = 0
        keep = True
        overlap = False
        for f in tr.frags:
            ps, pe = f[0], f[1]
            if f[4] or start >= pe or end <= ps:
                continue
            overlap = True
            if ps <= start:
                if end <= pe:
                    keep = False                         # nothing new: the earlier data stands
                    break
                ltrim = max(ltrim, pe - start)
            elif end >= pe:
                f[4] = True                              # covered by a fragment starting before it
        if overlap:
            add_event(pkt, f"decoder.{ver}.frag_overlap")
            c["defrag.overlaps"] += 1
        if keep:
            while self.held >= self.max_held:
                evict_self = next(iter(self._trackers)) == key    # this datagram alone fills the budget
                self._evict_oldest()
                if evict_self:
                    return None
            tr.frags.append([start, end, data, ltrim, False])
            self.held += 1
        if not more:
            tr.total = end
        if start == 0 and tr.header is None:
            if v4:
                tr.header = bytes(mv[l3:data_start])
            else:
                tr.header = bytes(mv[l3:fh])
                tr.nh_off = nh_at - l3
                tr.nh = mv[fh]
        if tr.total < 0 or tr.header is None:
            return None
        live = sorted((f for f in tr.frags if not f[4]), key=lambda f: f[0])   # stable: arrival order on ties
        covered = 0                                      # does the union of fragments cover [0, total)?
        for f in live:
            if f[0] + f[3] > covered:
                return None
            if f[1] > covered:
                covered = f[1]
        if covered < tr.total:
            return None
        buf = bytearray(tr.total)
        total = tr.total
        for s, e, d, lt, _skip in live:                  # offset order: a higher offset overwrites
            lo = s + lt
            hi = min(e, total)
            if lo < hi:
                buf[lo:hi] = d[lt:hi - s]
        self._drop(key)
        c["defrag.reassembled"] += 1
        hdr = bytearray(tr.header)
        if v4:
            struct.pack_into("!H", hdr, 2, len(hdr) + tr.total)
            hdr[6] &= 0x40                               # keep DF, clear MF and the offset
            hdr[7] = 0
            hdr[10] = hdr[11] = 0
            struct.pack_into("!H", hdr, 10, inet_checksum(hdr))
        else:
            struct.pack_into("!H", hdr, 4, len(hdr) - 40 + tr.total)
            hdr[tr.nh_off] = tr.nh
        return bytes(hdr + buf)

    def reassembled(self, data: bytes, pkt: Packet, opts: DecodeOptions = DEFAULT_OPTIONS) -> tuple[Packet, ...]:
        """Decode a datagram returned by `add`, as seen with `pkt` (the last fragment)."""
        meta = FrameMeta(ts=pkt.ts, iface=pkt.iface, vlan=pkt.vlan, pcap_cnt=pkt.pcap_cnt)
        pkts = decode_ip(data, meta, opts)
        pkts[0].outer = pkt.outer
        return pkts

    def expire(self, now: float) -> int:
        """Drop datagrams whose first fragment is older than the timeout; how many."""
        dead = [k for k, t in self._trackers.items() if now - t.first_ts > self.timeout]
        for k in dead:
            self._drop(k)
        self.counters["defrag.timeouts"] += len(dead)
        return len(dead)

    def stats(self) -> dict[str, int]:
        return dict(self.counters, **{"defrag.active": len(self._trackers)})
