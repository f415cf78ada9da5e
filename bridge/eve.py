"""EVE JSON rendering (Suricata's field names) and an append-only writer.

`to_eve(event)` turns a `rules.events` dataclass into the dict Suricata would
log; no clock is read: `timestamp` is the packet time.  `EveWriter` appends one
JSON line per event; the file is opened with O_APPEND and each batch goes out
in one `write()`, so several worker processes can share one file without
interleaving inside a line.
"""
from __future__ import annotations

import datetime as _dt
import json
import os

from rules.decode import ip_text, proto_name
from rules.events import Alert, DecoderEvent, Drop, PacketInfo, Stats

_UTC = _dt.timezone.utc
_TCP_FLAG_NAMES = ((1, "fin"), (2, "syn"), (4, "rst"), (8, "psh"), (16, "ack"), (32, "urg"), (64, "ece"), (128, "cwr"))


def timestamp(ts: float) -> str:
    """ISO 8601 with microseconds and a +0000 offset, as EVE writes it."""
    us = int(round(ts * 1_000_000))
    d = _dt.datetime.fromtimestamp(us // 1_000_000, _UTC).replace(microsecond=us % 1_000_000)
    return d.strftime("%Y-%m-%dT%H:%M:%S.%f") + "+0000"


def _common(p: PacketInfo, event_type: str) -> dict:
    out: dict = {"timestamp": timestamp(p.ts)}
    if p.flow_id:
        out["flow_id"] = p.flow_id
    if p.pcap_cnt:
        out["pcap_cnt"] = p.pcap_cnt
    out["event_type"] = event_type
    if p.iface:
        out["in_iface"] = p.iface
    if p.vlan:
        out["vlan"] = list(p.vlan)
    if p.ipver:
        out["src_ip"] = ip_text(p.ipver, p.src)
        if p.proto in (6, 17, 132):
            out["src_port"] = p.sport
        out["dest_ip"] = ip_text(p.ipver, p.dst)
        if p.proto in (6, 17, 132):
            out["dest_port"] = p.dport
        out["proto"] = proto_name(p.proto)
        if p.proto in (1, 58) and p.icmp_type >= 0:
            out["icmp_type"] = p.icmp_type
            out["icmp_code"] = p.icmp_code
    if p.to_server is not None:
        out["direction"] = "to_server" if p.to_server else "to_client"
    out["pkt_src"] = p.pkt_src
    return out


def to_eve(event) -> dict:
    if isinstance(event, Alert):
        out = _common(event.pkt, "alert")
        out["alert"] = {
            "action": event.action,
            "gid": event.gid,
            "signature_id": event.sid,
            "rev": event.rev,
            "signature": event.msg,
            "category": event.category,
            "severity": event.severity,
        }
        return out
    if isinstance(event, Drop):
        p = event.pkt
        out = _common(p, "drop")
        drop = {"len": p.length, "ttl": p.ttl, "ipid": p.ip_id, "reason": event.reason}
        if p.proto == 6:
            for bit, name in _TCP_FLAG_NAMES:
                if p.tcp_flags & bit:
                    drop[name] = True
        if event.sid:
            drop["signature_id"] = event.sid
        out["drop"] = drop
        return out
    if isinstance(event, DecoderEvent):
        out = _common(event.pkt, "anomaly")
        out["anomaly"] = {"type": "decode", "event": event.name}
        return out
    if isinstance(event, Stats):
        return {"timestamp": timestamp(event.ts), "event_type": "stats", "stats": dict(event.counters)}
    raise TypeError(f"not an EVE event: {type(event).__name__}")


def dumps(event) -> str:
    return json.dumps(to_eve(event), separators=(",", ":"))


class EveWriter:
    """Append EVE lines to a path (O_APPEND, one write() per batch) or to an open text/binary file."""

    def __init__(self, path_or_file) -> None:
        self._fd: int | None = None
        self._file = None
        if isinstance(path_or_file, (str, os.PathLike)):
            self._fd = os.open(os.fspath(path_or_file), os.O_WRONLY | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC, 0o644)
        else:
            self._file = path_or_file
        self._buf: list[str] = []
        self.written = 0

    def write(self, events: tuple, meta=None) -> None:
        if not events:
            return
        lines = [dumps(e) for e in events]
        self.written += len(lines)
        data = "\n".join(lines) + "\n"
        if self._fd is not None:
            b = data.encode()
            n = os.write(self._fd, b)
            while n < len(b):                  # regular files: a short write only on ENOSPC-like trouble
                n += os.write(self._fd, b[n:])
        else:
            f = self._file
            f.write(data.encode() if "b" in getattr(f, "mode", "") else data)

    def write_lines(self, lines: list[str]) -> None:
        """Pre-rendered lines (replay merging worker output)."""
        if not lines:
            return
        self.written += len(lines)
        data = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
        if self._fd is not None:
            b = data.encode()
            n = os.write(self._fd, b)
            while n < len(b):
                n += os.write(self._fd, b[n:])
        else:
            self._file.write(data)

    def flush(self) -> None:
        if self._file is not None and hasattr(self._file, "flush"):
            self._file.flush()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        elif self._file is not None:
            self.flush()

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
