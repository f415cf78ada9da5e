"""pcap and pcapng files: read (Ethernet frames with their times) and write.

    for ts, frame, source in iter_pcaps(["a.pcap", "dir/"]): ...

- pcap: both byte orders, microsecond (0xa1b2c3d4) and nanosecond
  (0xa1b23c4d) magics.
- pcapng: Section Header (either byte order, several sections), Interface
  Description (linktype, `if_name`, `if_tsresol` in powers of 10 or 2),
  Enhanced Packet, Simple Packet and the obsolete Packet block; other blocks
  are skipped.  Several interfaces are fine as long as they are Ethernet.
- Link types other than Ethernet (1) stop with a `PcapError` naming the file,
  the link type and the fix.
- A truncated file (a record header or body cut short) ends the file at the
  last whole record with a warning (`on_warning(message)`), never a traceback.

Several files, or a directory (its files sorted by name), are one continuous
stream: `PcapStream` reads them in order and exposes `bytes_read` /
`total_bytes` for progress.
"""
from __future__ import annotations

import os
import struct
import sys
from pathlib import Path
from typing import BinaryIO, Callable, Iterator

LINKTYPE_ETHERNET = 1
LINKTYPE_NAMES = {0: "NULL/loopback", 1: "Ethernet", 101: "raw IP", 113: "Linux cooked (SLL)",
                  228: "raw IPv4", 229: "raw IPv6", 276: "Linux cooked v2 (SLL2)", 127: "802.11 radiotap"}

_PCAP_MAGIC = {
    b"\xd4\xc3\xb2\xa1": ("<", 1e-6), b"\xa1\xb2\xc3\xd4": (">", 1e-6),
    b"\x4d\x3c\xb2\xa1": ("<", 1e-9), b"\xa1\xb2\x3c\x4d": (">", 1e-9),
}
_NG_SHB = 0x0A0D0D0A


class PcapError(Exception):
    """The file cannot be read as a capture we support (message says why and what to do)."""


def _warn_default(msg: str) -> None:
    print(f"warning: {msg}", file=sys.stderr)


def _linktype_error(path: str, linktype: int, where: str = "") -> PcapError:
    name = LINKTYPE_NAMES.get(linktype, "unknown")
    return PcapError(f"{path}: link type {linktype} ({name}){where} is not supported: ipsbridge replays "
                     "Ethernet captures only (LINKTYPE_ETHERNET = 1); capture on the bridge ports, "
                     "or convert (e.g. tcprewrite --dlt=enet)")


def _read_exact(f: BinaryIO, n: int) -> bytes:
    return f.read(n)


def read_file(path: str | os.PathLike, on_warning: Callable[[str], None] | None = None,
              progress: list | None = None) -> Iterator[tuple[float, bytes, str]]:
    """(ts, frame, iface name or "") for every record of one pcap/pcapng file."""
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
    _vmaj, _vmin, _tz, _sig, _snap, linktype = struct.unpack(order + "HHiIII", rest)
    linktype &= 0x0FFFFFFF
    if linktype != LINKTYPE_ETHERNET:
        raise _linktype_error(path, linktype)
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
        data = f.read(incl)
        if len(data) < incl:
            warn(f"{path}: packet {n + 1} truncated ({len(data)} of {incl} bytes); "
                 "stopping at the last whole packet")
            return
        n += 1
        if progress is not None:
            progress[0] += 16 + incl
        yield sec + frac * unit, data, ""


def _tsresol(v: int) -> float:
    if v & 0x80:
        return 2.0 ** -(v & 0x7F)
    return 10.0 ** -v


def _read_pcapng(f, path, first4, warn, progress):
    order = "<"
    ifaces: list[tuple[int, float, str]] = []   # (linktype, ts unit, name)
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
            linktype, _res, _snap = struct.unpack_from(order + "HHI", body, 0)
            unit, name = 1e-6, ""
            off = 8
            while off + 4 <= len(body):
                code, olen = struct.unpack_from(order + "HH", body, off)
                val = body[off + 4:off + 4 + olen]
                if code == 0:
                    break
                if code == 2:
                    name = val.rstrip(b"\x00").decode("utf-8", "replace")
                elif code == 9 and olen >= 1:
                    unit = _tsresol(val[0])
                off += 4 + ((olen + 3) & ~3)
            ifaces.append((linktype, unit, name))
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
            linktype, unit, name = ifaces[iface]
            if linktype != LINKTYPE_ETHERNET:
                raise _linktype_error(path, linktype, f" on interface {iface} ({name or 'unnamed'})")
            n += 1
            yield (ts_raw * unit if ts_raw is not None else 0.0), bytes(data), name
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
    """Several capture files as one stream of (ts, frame, source_file) -- or,
    with `with_iface`, (ts, frame, source_file, iface)."""

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

    def __iter__(self):
        for p in self.files:
            src = str(p)
            for ts, data, iface in read_file(p, self._warn, self._progress):
                if self.with_iface:
                    yield ts, data, src, iface
                else:
                    yield ts, data, src


def iter_pcaps(paths, *, on_warning: Callable[[str], None] | None = None, with_iface: bool = False) -> PcapStream:
    return PcapStream(paths, on_warning=on_warning, with_iface=with_iface)


class PcapWriter:
    """Classic pcap (microseconds, little endian, Ethernet) writer."""

    def __init__(self, path_or_file, *, snaplen: int = 262144, nano: bool = False) -> None:
        if isinstance(path_or_file, (str, os.PathLike)):
            self._f = open(path_or_file, "wb")
            self._own = True
        else:
            self._f = path_or_file
            self._own = False
        self.nano = nano
        magic = 0xA1B23C4D if nano else 0xA1B2C3D4
        self._f.write(struct.pack("<IHHiIII", magic, 2, 4, 0, 0, snaplen, LINKTYPE_ETHERNET))
        self.count = 0

    def write(self, ts: float, data: bytes | memoryview) -> None:
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

    def close(self) -> None:
        if self._own:
            self._f.close()
        else:
            self._f.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
