"""pcap and pcapng files: read (frames with their times and link types) and write.

    for rec in iter_pcaps(["a.pcap", "dir/"]).records(): rec.ts, rec.data, rec.linktype, ...

- pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond
  (0xa1b23c4d) magics.
- pcapng: Section Header (either byte order, several sections), Interface
  Description (linktype, `if_name`, `if_tsresol` in powers of 10 or 2),
  Enhanced Packet, Simple Packet and the obsolete Packet block; other blocks
  are skipped.  Each interface has its own link type, so one file may mix
  link types; every record carries the link type it was captured with.
- Link types: those `rules.decode` reads (`LINKTYPES`): Ethernet (1), Linux
  cooked SLL (113) and SLL2 (276, what `tcpdump -i any` writes), raw IP (101,
  228, 229), NULL (0) and LOOP (108).  Any other stops with a `PcapError`
  naming the file, the link type's number and name, and what to do: a pcap at
  its header, a pcapng at the first packet on such an interface (an interface
  without packets is harmless).  `linktypes(path)` finds them without reading
  the packets, so a command can refuse before it starts.
- A truncated file (a record header or body cut short) ends the file at the
  last whole record with a warning (`on_warning(message)`), never a traceback.
- Absurd lengths are refused as libpcap refuses them (sf-pcap.c, sf-pcapng.c),
  with a `PcapError` naming the file, the packet number and the length, before
  anything of that size is read: a pcap record whose captured length is above
  MAX_SNAPLEN (262144, libpcap's maximum for every link type we read); a pcap
  record above the file's own snapshot length but within 262144 is cut to the
  snapshot length, as libpcap does; a pcapng packet above its interface's
  snapshot length, a pcapng block above 16 MiB, a section header above 1 MiB.
  A snapshot length of 0 (or above 2^31-1) means 262144, as in libpcap.

Several files, or a directory (its files sorted by name), are one continuous
stream: `PcapStream` reads them in order and exposes `bytes_read` /
`total_bytes` for progress.

Writing: `PcapWriter` (classic pcap, one link type per file, as the format
allows) and `PcapngWriter` (one Interface Description per link type, added as
they first appear); `open_writer(path, linktypes)` picks by the file name
(`.pcapng` -> pcapng) and refuses a classic pcap for records of several link
types, naming them.
"""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import BinaryIO, Callable, Iterator, NamedTuple

from rules.decode import LINKTYPE_ETHERNET, LINKTYPES

# LINKTYPE_* names (www.tcpdump.org/linktypes.html) for messages: what we read, and the
# link types people most often meet in captures we do not read
LINKTYPE_NAMES = {
    0: "NULL, BSD loopback", 1: "ETHERNET", 6: "IEEE802_5, Token Ring", 8: "SLIP", 9: "PPP", 10: "FDDI",
    50: "PPP_HDLC", 51: "PPP_ETHER, PPPoE", 101: "RAW, raw IP", 104: "C_HDLC, Cisco HDLC",
    105: "IEEE802_11, 802.11 wireless", 107: "FRELAY, Frame Relay", 108: "LOOP, OpenBSD loopback",
    109: "ENC, OpenBSD IPsec", 113: "LINUX_SLL, Linux cooked capture", 117: "PFLOG, pf log",
    119: "IEEE802_11_PRISM, 802.11 with Prism header",
    127: "IEEE802_11_RADIOTAP, 802.11 with radiotap header", 138: "APPLE_IP_OVER_IEEE1394",
    143: "DOCSIS", 163: "IEEE802_11_AVS, 802.11 with AVS header", 187: "BLUETOOTH_HCI_H4",
    189: "USB_LINUX", 192: "PPI, 802.11 with PPI header", 195: "IEEE802_15_4_WITHFCS", 197: "ERF",
    201: "BLUETOOTH_HCI_H4_WITH_PHDR", 220: "USB_LINUX_MMAPPED", 227: "CAN_SOCKETCAN",
    228: "IPV4, raw IPv4", 229: "IPV6, raw IPv6", 239: "NFLOG, Linux netfilter log", 249: "USBPCAP",
    252: "WIRESHARK_UPPER_PDU", 253: "NETLINK", 254: "BLUETOOTH_LINUX_MONITOR", 258: "PKTAP, Apple",
    276: "LINUX_SLL2, Linux cooked capture v2",
    **{147 + i: f"USER{i}, private use" for i in range(16)},
}

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_NG_SHB = 0x0A0D0D0A

# libpcap's bounds on what a capture file may make it read (sf-pcap.c, sf-pcapng.c, pcap-common.c)
MAX_SNAPLEN = 262144              # MAXIMUM_SNAPLEN: max_snaplen_for_dlt() of every link type in LINKTYPES
MAX_NG_BLOCK = 16 * 1024 * 1024   # INITIAL_MAX_BLOCKSIZE: a larger pcapng block is refused
MAX_NG_SHB = 1024 * 1024          # BT_SHB_INSANE_MAX: a larger section header block is refused
_INT_MAX = 2 ** 31 - 1
DAMAGED = "the file is damaged there (libpcap, hence tcpdump and Suricata, refuses it too)"


def snapshot_length(snaplen: int) -> int:
    """The snapshot length libpcap reads a file (or pcapng interface) with: as written, except
    0 or above INT_MAX, which mean MAX_SNAPLEN (pcap_adjust_snapshot)."""
    return MAX_SNAPLEN if snaplen == 0 or snaplen > _INT_MAX else snaplen


def _caplen_error(path: str, packet: int, caplen: int, snapshot: int) -> PcapError:
    limit = f"the snapshot length {snapshot}" if caplen > snapshot else f"the maximum {MAX_SNAPLEN}"
    return PcapError(f"{path}: packet {packet}: captured length {caplen} is bigger than {limit}; {DAMAGED}")


def _block_error(path: str, after: int, blen: int, limit: int, what: str = "block") -> PcapError:
    return PcapError(f"{path}: packet {after + 1}: pcapng {what} of {blen} bytes is bigger than the maximum "
                     f"{limit}; {DAMAGED}")


class PcapError(Exception):
    """The file cannot be read as a capture we support (message says why and what to do)."""


class Record(NamedTuple):
    """One captured frame."""

    ts: float          # seconds since the epoch
    data: bytes        # the frame, from its link-layer header on
    source: str        # the file it came from
    iface: str         # pcapng interface name, or ""
    linktype: int      # LINKTYPE_* of `data` (one of rules.decode.LINKTYPES)


def _warn_default(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def linktype_name(linktype: int) -> str:
    return LINKTYPE_NAMES.get(linktype, "unknown")


def _supported() -> str:
    return ", ".join(f"{lt} {LINKTYPE_NAMES[lt].split(',')[0]}" for lt in sorted(LINKTYPES))


def _linktype_error(path: str, linktype: int, where: str = "") -> PcapError:
    return PcapError(f"{path}: link type {linktype} ({linktype_name(linktype)}){where} is not supported: "
                     f"ipsbridge replays link types {_supported()}; capture again on an interface of one of "
                     "those types (`tcpdump -i any` writes LINUX_SLL2), or convert the file if a tool can "
                     "(e.g. tcprewrite --dlt=enet)")


def _read_exact(f: BinaryIO, n: int) -> bytes:
    return f.read(n)


def read_file(path: str | os.PathLike, on_warning: Callable[[str], None] | None = None,
              progress: list | None = None) -> Iterator[Record]:
    """Every record of one pcap/pcapng file."""
    warn = on_warning or _warn_default
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise PcapError(f"{path}: cannot open: {e.strerror}") from None
    with f:
        head = f.read(4)
        if len(head) < 4:
            raise PcapError(f"{path}: empty or too short to be a pcap/pcapng file")
        if head in _PCAP_MAGIC:
            yield from _read_pcap(f, path, head, warn, progress)
        elif struct.unpack("<I", head)[0] == _NG_SHB:
            yield from _read_pcapng(f, path, head, warn, progress)
        else:
            raise PcapError(f"{path}: not a pcap or pcapng file (magic {head.hex()})")


def _read_pcap(f, path, magic, warn, progress):
    order, unit = _PCAP_MAGIC[magic]
    rest = f.read(20)
    if len(rest) < 20:
        raise PcapError(f"{path}: truncated pcap global header")
    _vmaj, _vmin, _tz, _sig, snaplen, linktype = struct.unpack(order + "HHiIII", rest)
    linktype &= 0xFFFF                  # the upper bits say whether frames end with an FCS
    if linktype not in LINKTYPES:
        raise _linktype_error(path, linktype)
    snapshot = snapshot_length(snaplen)
    rec = struct.Struct(order + "IIII")
    n = 0
    while True:
        hdr = f.read(16)
        if not hdr:
            return
        if len(hdr) < 16:
            warn(f"{path}: truncated record header after {n} packets; stopping at the last whole packet")
            return
        sec, frac, incl, _orig = rec.unpack(hdr)
        if incl > MAX_SNAPLEN:
            raise _caplen_error(path, n + 1, incl, snapshot)
        data = f.read(incl)
        if len(data) < incl:
            warn(f"{path}: packet {n + 1} truncated ({len(data)} of {incl} bytes); "
                 "stopping at the last whole packet")
            return
        n += 1
        if progress is not None:
            progress[0] += 16 + incl
        if incl > snapshot:             # within MAX_SNAPLEN: libpcap hands over the first `snapshot` bytes
            data = data[:snapshot]
        yield Record(sec + frac * unit, data, path, "", linktype)


def _tsresol(v: int) -> float:
    if v & 0x80:
        return 2.0 ** -(v & 0x7F)
    return 10.0 ** -v


def _read_pcapng(f, path, first4, warn, progress):
    order = "<"
    ifaces: list[tuple[int, float, str, int]] = []   # (linktype, ts unit, name, snapshot length)
    n = 0
    pending = first4
    while True:
        hdr = pending + f.read(8 - len(pending)) if pending else f.read(8)
        pending = b""
        if not hdr:
            return
        if len(hdr) < 8:
            warn(f"{path}: truncated block header after {n} packets; stopping at the last whole packet")
            return
        btype_raw = hdr[:4]
        if struct.unpack("<I", btype_raw)[0] == _NG_SHB:
            # the byte-order magic follows the length; read it to learn the order
            bom = f.read(4)
            if len(bom) < 4:
                warn(f"{path}: truncated section header")
                return
            if bom == b"\x4d\x3c\x2b\x1a":
                order = "<"
            elif bom == b"\x1a\x2b\x3c\x4d":
                order = ">"
            else:
                raise PcapError(f"{path}: bad pcapng byte-order magic {bom.hex()}")
            blen = struct.unpack(order + "I", hdr[4:8])[0]
            if blen > MAX_NG_SHB:
                raise _block_error(path, n, blen, MAX_NG_SHB, "section header block")
            body = f.read(blen - 12) if blen >= 12 else b""
            if blen < 12 or len(body) < blen - 12:
                warn(f"{path}: truncated section header")
                return
            ifaces = []
            if progress is not None:
                progress[0] += blen
            continue
        btype, blen = struct.unpack(order + "II", hdr)
        if blen < 12 or blen % 4:
            warn(f"{path}: corrupt block (type {btype:#x}, length {blen}) after {n} packets; stopping there")
            return
        if blen > MAX_NG_BLOCK:
            raise _block_error(path, n, blen, MAX_NG_BLOCK)
        body = f.read(blen - 8)
        if len(body) < blen - 8:
            warn(f"{path}: truncated block after {n} packets; stopping at the last whole packet")
            return
        if progress is not None:
            progress[0] += blen
        body = body[:-4]                      # trailing block length
        if btype == 1:                        # Interface Description Block
            if len(body) < 8:
                raise PcapError(f"{path}: interface description block too short")
            linktype, _res, snaplen = struct.unpack_from(order + "HHI", body, 0)
            unit, name = 1e-6, ""
            off = 8
            while off + 4 <= len(body):
                code, olen = struct.unpack_from(order + "HH", body, off)
                val = body[off + 4:off + 4 + olen]
                if code == 0:
                    break
                if code == 2:
                    name = val.rstrip(b"\x00").decode("utf-8", "replace")
                elif code == 9 and val:          # (an option cut short by the block end has no value)
                    unit = _tsresol(val[0])
                off += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, unit, name, snapshot_length(snaplen)))
        elif btype in (6, 2, 3):
            if btype == 3:
                if len(body) < 4:
                    continue
                iface = 0
                orig = struct.unpack_from(order + "I", body, 0)[0]
                data = body[4:4 + orig]
                ts_raw = None
            else:
                if len(body) < 20:
                    warn(f"{path}: short packet block skipped")
                    continue
                if btype == 6:
                    iface, hi, lo, cap, _orig = struct.unpack_from(order + "IIIII", body, 0)
                else:
                    iface, _drops, hi, lo, cap, _orig = struct.unpack_from(order + "HHIIII", body, 0)
                data = body[20:20 + cap]
                ts_raw = (hi << 32) | lo
            if iface >= len(ifaces):
                raise PcapError(f"{path}: packet refers to interface {iface}, which no interface block described")
            linktype, unit, name, snapshot = ifaces[iface]
            if linktype not in LINKTYPES:
                raise _linktype_error(path, linktype, f" on interface {iface} ({name or 'unnamed'})")
            if btype == 3:              # a simple packet block's captured length: its length, up to the snapshot
                data = data[:snapshot]
            elif cap > snapshot:
                raise _caplen_error(path, n + 1, cap, snapshot)
            n += 1
            yield Record((ts_raw * unit if ts_raw is not None else 0.0), bytes(data), path, name, linktype)
        # other blocks (name resolution, statistics, custom, ...) are skipped


def expand(paths) -> list[Path]:
    """Files of `paths` in order; a directory contributes its regular files sorted by name."""
    out: list[Path] = []
    for p in paths:
        p = Path(p)
        if p.is_dir():
            out.extend(sorted(q for q in p.iterdir() if q.is_file() and not q.name.startswith(".")))
        elif p.exists():
            out.append(p)
        else:
            raise PcapError(f"{p}: no such file or directory")
    return out


class PcapStream:
    """Several capture files as one stream.  `records()` yields `Record`s; iterating
    yields the short form (ts, frame, source_file) -- or, with `with_iface`,
    (ts, frame, source_file, iface)."""

    def __init__(self, paths, *, on_warning: Callable[[str], None] | None = None, with_iface: bool = False) -> None:
        self.files = expand([paths] if isinstance(paths, (str, os.PathLike)) else paths)
        self.total_bytes = sum(p.stat().st_size for p in self.files)
        self._progress = [0]
        self.on_warning = on_warning
        self.with_iface = with_iface
        self.warnings: list[str] = []

    @property
    def bytes_read(self) -> int:
        return self._progress[0]

    def _warn(self, msg: str) -> None:
        self.warnings.append(msg)
        (self.on_warning or _warn_default)(msg)

    def records(self) -> Iterator[Record]:
        for p in self.files:
            yield from read_file(p, self._warn, self._progress)

    def __iter__(self):
        for r in self.records():
            if self.with_iface:
                yield r.ts, r.data, r.source, r.iface
            else:
                yield r.ts, r.data, r.source


def iter_pcaps(paths, *, on_warning: Callable[[str], None] | None = None, with_iface: bool = False) -> PcapStream:
    return PcapStream(paths, on_warning=on_warning, with_iface=with_iface)


def linktypes(path: str | os.PathLike) -> set[int]:
    """The link types the packets of one file were captured with, read from the headers
    alone (a pcapng's blocks are walked, packet bodies skipped).  Raises `PcapError` for
    a file that is not a capture or holds packets of a link type we do not read; a
    truncated tail is left to the reader to report."""
    path = os.fspath(path)
    try:
        f = open(path, "rb")
    except OSError as e:
        raise PcapError(f"{path}: cannot open: {e.strerror}") from None
    with f:
        head = f.read(24)
        if len(head) < 4:
            raise PcapError(f"{path}: empty or too short to be a pcap/pcapng file")
        if head[:4] in _PCAP_MAGIC:
            if len(head) < 24:
                raise PcapError(f"{path}: truncated pcap global header")
            order = _PCAP_MAGIC[head[:4]][0]
            lt = struct.unpack_from(order + "I", head, 20)[0] & 0xFFFF
            if lt not in LINKTYPES:
                raise _linktype_error(path, lt)
            return {lt}
        if struct.unpack_from("<I", head)[0] != _NG_SHB:
            raise PcapError(f"{path}: not a pcap or pcapng file (magic {head[:4].hex()})")
        f.seek(0)
        return _pcapng_linktypes(f, path)


def _pcapng_linktypes(f, path: str) -> set[int]:
    order = "<"
    ifaces: list[tuple[int, str]] = []         # (linktype, name) of the current section
    used: set[int] = set()
    packets = 0
    while True:
        hdr = f.read(12)                       # type, length, and the first body word
        if len(hdr) < 12:
            return used
        if struct.unpack_from("<I", hdr)[0] == _NG_SHB:
            order = ">" if hdr[8:12] == b"\x1a\x2b\x3c\x4d" else "<"
            ifaces = []
        btype, blen = struct.unpack_from(order + "II", hdr)
        if blen < 12 or blen % 4:
            return used                        # corrupt: the reader stops here too, with a warning
        limit = MAX_NG_SHB if btype == _NG_SHB else MAX_NG_BLOCK
        if blen > limit:                       # refused before the first packet, as the reader would
            raise _block_error(path, packets, blen, limit,
                               "section header block" if btype == _NG_SHB else "block")
        if btype == 1:                         # IDB: link type (16 bits), then an option list
            body = f.read(blen - 12)
            lt = struct.unpack_from(order + "H", hdr, 8)[0]
            name = ""
            off = 4
            while off + 4 <= len(body) - 4:
                code, olen = struct.unpack_from(order + "HH", body, off)
                if code == 0:
                    break
                if code == 2:
                    name = body[off + 4:off + 4 + olen].rstrip(b"\x00").decode("utf-8", "replace")
                off += 4 + ((olen + 3) & ~3)
            ifaces.append((lt, name))
            continue
        if btype in (6, 2, 3):                 # packet blocks: which interface
            packets += 1
            if btype == 6:
                iface = struct.unpack_from(order + "I", hdr, 8)[0]
            elif btype == 2:
                iface = struct.unpack_from(order + "H", hdr, 8)[0]
            else:
                iface = 0
            if iface < len(ifaces):
                lt, name = ifaces[iface]
                if lt not in LINKTYPES:
                    raise _linktype_error(path, lt, f" on interface {iface} ({name or 'unnamed'})")
                used.add(lt)
        f.seek(blen - 12, 1)


class _Writer:
    """A capture file to write: opened by path (and closed), or a file object given
    (flushed on close)."""

    def __init__(self, path_or_file) -> None:
        if isinstance(path_or_file, (str, os.PathLike)):
            self._f = open(path_or_file, "wb")
            self._own = True
            self.name = os.fspath(path_or_file)
        else:
            self._f = path_or_file
            self._own = False
            self.name = getattr(path_or_file, "name", "capture")
        self.count = 0

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class PcapWriter(_Writer):
    """Classic pcap writer (little endian, microseconds unless `nano`): one link type
    per file, in the global header."""

    def __init__(self, path_or_file, *, snaplen: int = MAX_SNAPLEN, nano: bool = False,
                 linktype: int = LINKTYPE_ETHERNET) -> None:
        super().__init__(path_or_file)
        self.nano = nano
        self.linktype = linktype
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, linktype))

    def write(self, ts: float, data: bytes | memoryview, linktype: int | None = None) -> None:
        """Append a record; `linktype`, when given, must be the file's."""
        if linktype is not None and linktype != self.linktype:
            raise PcapError(f"{self.name}: a {linktype_name(linktype)} frame (link type {linktype}) cannot go "
                            f"into a pcap file of link type {self.linktype} ({linktype_name(self.linktype)}): "
                            "a pcap file holds one link type; write pcapng (a .pcapng name) instead")
        sec = int(ts)
        if self.nano:
            frac = int(round((ts - sec) * 1e9))
            if frac >= 1_000_000_000:
                sec, frac = sec + 1, frac - 1_000_000_000
        else:
            frac = int(round((ts - sec) * 1e6))
            if frac >= 1_000_000:
                sec, frac = sec + 1, frac - 1_000_000
        n = len(data)
        self._f.write(struct.pack("<IIII", sec, frac, n, n))
        self._f.write(data)
        self.count += 1


def _ng_block(btype: int, body: bytes) -> bytes:
    body += b"\x00" * (-len(body) % 4)
    n = len(body) + 12
    return struct.pack("<II", btype, n) + body + struct.pack("<I", n)


class PcapngWriter(_Writer):
    """pcapng writer (little endian, microsecond times): a Section Header, then an
    Interface Description per link type when its first record comes, so one file can
    hold frames of several link types, each record with its own."""

    def __init__(self, path_or_file, *, snaplen: int = MAX_SNAPLEN) -> None:
        super().__init__(path_or_file)
        self.snaplen = snaplen
        self._iface: dict[int, int] = {}       # link type -> interface id
        self._f.write(_ng_block(0x0A0D0D0A, struct.pack("<IHHq", 0x1A2B3C4D, 1, 0, -1)))

    def write(self, ts: float, data: bytes | memoryview, linktype: int = LINKTYPE_ETHERNET) -> None:
        iface = self._iface.get(linktype)
        if iface is None:
            iface = self._iface[linktype] = len(self._iface)
            self._f.write(_ng_block(1, struct.pack("<HHI", linktype, 0, self.snaplen)))
        units = round(ts * 1e6)
        n = len(data)
        self._f.write(_ng_block(6, struct.pack("<IIIII", iface, units >> 32, units & 0xFFFFFFFF, n, n)
                                + bytes(data)))
        self.count += 1


def open_writer(path: str | os.PathLike, linktypes_in: dict[int, str]) -> PcapWriter | PcapngWriter:
    """A writer for records of the link types in `linktypes_in` ({linktype: a file with
    it}): pcapng when the name ends in .pcapng, else classic pcap, which has room for one
    link type only -- several are refused here, before anything is written."""
    if os.fspath(path).endswith(".pcapng"):
        return PcapngWriter(path)
    if len(linktypes_in) > 1:
        mix = "; ".join(f"{lt} ({linktype_name(lt)}) in {src}" for lt, src in sorted(linktypes_in.items()))
        raise PcapError(f"{os.fspath(path)}: the captures mix link types -- {mix} -- and a pcap file holds one "
                        "link type: give a .pcapng name (one interface per link type), or replay the "
                        "captures separately")
    lt = next(iter(linktypes_in), LINKTYPE_ETHERNET)
    return PcapWriter(path, linktype=lt)
